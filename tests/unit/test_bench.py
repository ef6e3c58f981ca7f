"""The benchmark's pure parts: percentiles, the lag verdict, the rate search, regressions, the observer."""

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from bench.histogram import Histogram
from bench.pipeline.observer import Observer
from bench.pipeline.profile import layers, parse, top_frames
from bench.pipeline.rate_search import Trial, best, judge, next_rate
from bench.pipeline.stages import free_port, lag_by_service
from bench.results import previous_result, regressions, report, save
from events.codec import encode
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskRouted, TaskSubmitted
from events.values import CapabilityRequirement

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MACHINE = {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 23.5}


# --- histogram -------------------------------------------------------------------


def test_percentiles_of_a_uniform_sample_are_within_the_bucket_precision():
    histogram = Histogram()
    for value in range(1, 10_001):  # 1..10000 ms
        histogram.record(float(value))

    summary = histogram.summary()

    for name, exact in {"p50": 5000, "p95": 9500, "p99": 9900, "p999": 9990}.items():
        assert exact <= summary[name] <= exact * 1.01, name


def test_a_percentile_never_understates_and_never_exceeds_the_largest_value():
    histogram = Histogram()
    values = [random.Random(4).expovariate(1 / 20) for _ in range(5000)]
    for value in values:
        histogram.record(value)

    ordered = sorted(values)
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = ordered[int(q * len(ordered)) - 1]
        assert exact <= histogram.percentile(q) <= exact * 1.01 + 1e-9
    assert histogram.percentile(1.0) == max(values)


def test_tiny_values_share_the_first_bucket_and_an_empty_histogram_reads_zero():
    histogram = Histogram()
    assert histogram.summary() == {"p50": 0.0, "p95": 0.0, "p99": 0.0, "p999": 0.0}
    histogram.record(0.0)
    histogram.record(0.001)
    assert histogram.percentile(0.5) == 0.001  # the first bucket, capped at the largest value seen
    with pytest.raises(ValueError):
        histogram.percentile(0)


# --- the lag verdict and the rate search ---------------------------------------


def test_a_trial_that_keeps_up_with_a_flat_backlog_is_sustained():
    verdict = judge(offered_per_s=1000, completed_per_s=990, backlog=[120, 90, 150, 100, 130, 110], lag_bound=2000)
    assert verdict.sustained and verdict.reasons == ()


def test_a_trial_falling_behind_or_with_a_growing_backlog_is_not_sustained():
    behind = judge(offered_per_s=1000, completed_per_s=700, backlog=[100] * 6, lag_bound=2000)
    growing = judge(offered_per_s=1000, completed_per_s=1000, backlog=[100, 200, 900, 1400, 1900, 2500], lag_bound=2000)

    assert not behind.sustained and "completed 700/s of 1000/s offered" in behind.reasons
    assert not growing.sustained
    assert any("over the bound" in r for r in growing.reasons)
    assert any("growing" in r for r in growing.reasons)


def test_the_search_steps_up_while_sustained_then_bisects_until_precise():
    assert next_rate([], start=100) == 100
    assert next_rate([Trial(100, True)], start=100) == 150
    trials = [Trial(100, True), Trial(150, True), Trial(225, False)]

    assert next_rate(trials, start=100) == pytest.approx((150 * 225) ** 0.5)
    trials += [Trial(184, True), Trial(203, False), Trial(193, True)]
    assert next_rate(trials, start=100) is None  # 203 / 193 is within 10 %
    assert best(trials) == 193


def test_the_search_steps_down_when_even_the_first_rate_fails_and_gives_up_below_the_floor():
    assert next_rate([Trial(100, False)], start=100) == pytest.approx(100 / 1.5)
    assert next_rate([Trial(1.2, False)], start=1.2, lowest=1.0) is None
    assert best([Trial(1.2, False)]) is None


# --- regressions and the result files -------------------------------------------


def result(finished_at, tasks_per_minute=60_000, p99=40.0, replay=30_000, efficiency=0.4, rate=1000.0, machine=MACHINE):
    return {
        "finished_at": finished_at,
        "requested_rate": rate,
        "machine": dict(machine),
        "tasks_per_minute": tasks_per_minute,
        "routing_latency_ms": {"p50": 5, "p95": 20, "p99": p99, "p999": 80},
        "replay_events_per_second": replay,
        "efficiency": efficiency,
    }


def test_figures_worse_beyond_the_tolerance_are_flagged_and_others_are_not():
    previous = result("2026-01-01T10:00:00+00:00")
    current = result("2026-01-01T11:00:00+00:00", tasks_per_minute=50_000, p99=41.0, replay=29_000, efficiency=0.2)

    found = regressions(current, previous, tolerance=0.1)

    assert [(r.figure, r.previous, r.current) for r in found] == [
        ("tasks_per_minute", 60_000, 50_000),
        ("efficiency", 0.4, 0.2),
    ]


def test_a_small_latency_rise_in_milliseconds_is_jitter_not_a_regression():
    previous = result("a", p99=3.0)
    assert regressions(result("b", p99=4.5), previous, tolerance=0.1) == []
    assert [r.figure for r in regressions(result("b", p99=9.0), previous, tolerance=0.1)] == ["routing p99 ms"]


def test_only_an_earlier_run_of_the_same_kind_on_the_same_machine_is_compared(tmp_path):
    older = result("2026-01-01T09:00:00+00:00")
    latest_same = result("2026-01-01T10:00:00+00:00")
    other_machine = result("2026-01-01T10:30:00+00:00", machine={**MACHINE, "cores": 8})
    other_rate = result("2026-01-01T10:40:00+00:00", rate="max")
    other_fetch = {**result("2026-01-01T10:50:00+00:00"), "fetch": {"min_bytes": 65536, "max_wait_ms": 100}}
    other_end = {**result("2026-01-01T10:55:00+00:00"), "routing_latency_ends": "assignment handed to Kafka"}
    other_linger = {**result("2026-01-01T10:56:00+00:00"), "client_linger_ms": 0}
    other_nice = {**result("2026-01-01T10:57:00+00:00"), "off_path_nice": 10}
    later = result("2026-01-01T12:00:00+00:00")
    for n, r in enumerate(
        (older, latest_same, other_machine, other_rate, other_fetch, other_end, other_linger, other_nice, later)
    ):
        (tmp_path / f"pipeline-{n}.json").write_text(json.dumps(r))

    current = result("2026-01-01T11:00:00+00:00")

    assert previous_result(tmp_path, current) == latest_same
    assert previous_result(tmp_path / "none", current) is None
    # a result from before the fetch settings existed counts as taken with the defaults of then
    assert previous_result(tmp_path, {**current, "fetch": {"min_bytes": 1, "max_wait_ms": 100}}) == latest_same
    assert (
        previous_result(
            tmp_path,
            {**current, "fetch": {"min_bytes": 65536, "max_wait_ms": 100}, "finished_at": "2026-01-01T11:00:00+00:00"},
        )
        == other_fetch
    )
    # latency measured to another end is another figure
    assert previous_result(tmp_path, {**current, "routing_latency_ends": "assignment handed to Kafka"}) == other_end
    assert previous_result(tmp_path, {**current, "client_linger_ms": 0}) == other_linger
    assert previous_result(tmp_path, {**current, "client_linger_ms": 5}) == latest_same  # the linger of then
    assert previous_result(tmp_path, {**current, "off_path_nice": 10}) == other_nice


def test_a_saved_run_has_a_json_twin_and_a_readable_report(tmp_path):
    run = {
        **result("2026-01-01T11:00:00+00:00"),
        "lag": {"router": {"max": 3, "last": 0}},
        "processes": {"router (pid 1)": {"cpu_percent": 50.0, "cpu_ms_per_task": 0.5, "rss_mib_max": 90.0}},
        "profiles": {
            "router": {
                "samples": 10,
                "file": "r.txt",
                "self": [["score (logic.py)", 0.25]],
                "layers": {"faust and mode": 0.4, "our code": 0.6},
            }
        },
        "regressions": [],
    }

    json_path, report_path = save(tmp_path, run)

    assert json.loads(json_path.read_text()) == run
    text = report_path.read_text()
    assert report(run) == text
    assert "| router | 3 | 0 |" in text and "| router (pid 1) | 50.0 | 0.5 | 90.0 |" in text
    assert "5 / 20 / 40.0 / 80" in text
    assert "Profile of router (10 samples, r.txt)" in text and "- 25.0% score (logic.py)" in text
    assert "by the innermost library running: faust and mode 40.0%, our code 60.0%" in text
    assert (
        "Faust fetch: at least 1 bytes, waiting at most 100 ms; clients linger 5 ms; off-path processors' niceness 0"
    ) in text  # the run predates the three settings
    assert "to the balancer inbox copy" in text and "by hop" not in text


def test_a_report_gives_latency_by_hop_when_the_run_measured_it():
    hop = {"p50": 2.0, "p95": 3.0, "p99": 4.0, "p999": 5.0}
    run = {
        **result("2026-01-01T11:00:00+00:00"),
        "routing_latency_ends": "assignment handed to Kafka",
        "routing_hops_ms": {"route": hop, "forward": {**hop, "p50": 7.0}, "decide": hop},
    }
    text = report(run)
    assert "to the assignment handed to Kafka" in text
    hops = "| by hop, p50 / p99 ms: route; forward to the balancer's inbox; decide | 2.0 / 4.0; 7.0 / 4.0; 2.0 / 4.0 |"
    assert hops in text


# --- what the benchmark reads ---------------------------------------------------


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def raw(body, seconds):
    return encode(make_event(body, producer="bench", occurred_at=at(seconds)))


def submitted(task_id, seconds):
    return raw(
        TaskSubmitted(task_id=task_id, submitter="c", requirements=(CapabilityRequirement(name="python"),)), seconds
    )


def assigned(task_id, seconds, attempt=1):
    return raw(TaskAssigned(task_id=task_id, agent_id="a", attempt=attempt, capability="python"), seconds)


def completed(task_id, seconds):
    return raw(TaskCompleted(task_id=task_id, agent_id="a", attempt=1), seconds)


def test_routing_latency_is_submission_to_first_assignment_for_tasks_submitted_in_the_window():
    observer = Observer(window=(at(10).timestamp(), at(20).timestamp()))
    for value in (
        submitted("before", 9),
        assigned("before", 10.5),  # submitted before the window
        submitted("t1", 11),
        assigned("t1", 11.020),
        assigned("t1", 12, attempt=2),
        assigned("t2", 12.050),
        submitted("t2", 12),  # read out of order
        completed("t1", 11.5),
        completed("t2", 21),
        b"not json",
    ):
        observer.take(value)

    assert observer.latency_ms.count == 2
    assert 20 * 0.999 <= observer.latency_ms.percentile(0.5) <= 20 * 1.01
    assert 50 * 0.999 <= observer.latency_ms.percentile(1.0) <= 50 * 1.01  # stamps are microseconds
    assert (observer.submitted_total, observer.completed_total, observer.completed_in_window) == (3, 2, 1)
    assert observer.in_flight == 1
    assert observer.records == 10 and observer.mean_record_bytes > 100


def routed(task_id, seconds):
    return raw(TaskRouted(task_id=task_id, chosen_agent_id=None, policy="p", reason="r", candidates=()), seconds)


def millis(seconds):
    return int(at(seconds).timestamp() * 1000)


def test_latency_ends_when_the_assignment_reaches_kafka_and_splits_into_hops_in_any_reading_order():
    observer = Observer(window=(at(10).timestamp(), at(20).timestamp()))
    # t1: submitted at 11.000, routed on Kafka at 11.004, copied into the inbox at 11.010, assigned on Kafka at 11.013
    records = [
        (assigned("t1", 11.010), millis(11.013)),
        (submitted("t1", 11), millis(11.001)),
        (routed("t1", 11.003), millis(11.004)),
    ]
    for value, timestamp_ms in records:
        observer.take(value, timestamp_ms)

    assert observer.latency_ms.count == 1 and 13 * 0.999 <= observer.latency_ms.percentile(1.0) <= 13 * 1.01
    for hop, ms in {"route": 4, "forward": 6, "decide": 3}.items():
        assert ms * 0.999 <= observer.hops_ms[hop].percentile(1.0) <= ms * 1.01, hop
    assert observer.stamps == {}  # nothing is kept once a task's hops are counted


def test_ports_for_local_servers_are_free_distinct_and_never_ones_a_client_connection_could_be_given():
    lowest_ephemeral = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50 and all(1024 <= port < lowest_ephemeral for port in ports)


def test_stage_lag_sums_the_partitions_of_each_service():
    page = (
        "# TYPE orchestrator_consumer_lag gauge\n"
        'orchestrator_consumer_lag{partition="0",service="router",topic="t"} 3.0\n'
        'orchestrator_consumer_lag{partition="1",service="router",topic="t"} 4.0\n'
        'orchestrator_consumer_lag{partition="0",service="router",topic="u"} 1.0\n'
        "# TYPE orchestrator_events_in_total counter\n"
        'orchestrator_events_in_total{service="router",topic="t"} 99.0\n'
    )
    assert lag_by_service(page) == {"router": 8.0}


def test_a_profile_is_summed_into_self_and_inclusive_shares():
    stacks = parse(
        [
            "main (a.py:1);decode (codec.py:29);validate (main.py:10) 6",
            "main (a.py:1);apply (view.py:50) 3",
            "main (a.py:2);apply (view.py:51) 1",
            "garbage",
        ]
    )

    top = top_frames(stacks, n=2)

    assert top["samples"] == 10
    assert top["self"] == [("validate (main.py)", 0.6), ("apply (view.py)", 0.4)]
    assert top["inclusive"][0] == ("main (a.py)", 1.0)


def test_each_sample_goes_to_the_innermost_library_it_is_running_and_aiokafka_is_split_by_side():
    lines = [
        # our handler validating an envelope: pydantic, though our code is outside it
        "run (services/router/app.py:9);decode (events/codec.py:38);model_validate (/x/pydantic/main.py:732) 4",
        # an asyncio frame under Faust's queue counts as Faust
        "iter (/x/faust/streams.py:1180);get (/x/mode/utils/queues.py:235);get (asyncio/queues.py:173) 3",
        "send (/x/aiokafka/producer/sender.py:782);write (/x/aiokafka/conn.py:444) 2",
        "fetch (/x/aiokafka/consumer/fetcher.py:747);encode (/x/aiokafka/protocol/types.py:198) 1",
        "_run_once (asyncio/base_events.py:1922) 10",
        "not a stack line",
    ]

    shares = layers(lines)

    assert shares == {
        "event loop and standard library": 0.5,
        "pydantic validation": 0.2,
        "faust and mode": 0.15,
        "aiokafka producer": 0.1,
        "aiokafka consumer": 0.05,
    }


def test_a_tolerance_outside_zero_to_one_is_refused_with_its_variable_named():
    from services.settings import ConfigError, Settings

    assert Settings.from_env({"BENCH_REGRESSION_TOLERANCE": "0.25"}).bench.regression_tolerance == 0.25
    for bad in ("1.5", "-0.1", "ten"):
        with pytest.raises(ConfigError, match="BENCH_REGRESSION_TOLERANCE"):
            Settings.from_env({"BENCH_REGRESSION_TOLERANCE": bad})


def test_profiling_without_py_spy_is_refused_before_anything_runs(monkeypatch, capsys):
    from services.cli import main

    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("bench.cli.run", lambda *a, **k: pytest.fail("the benchmark started"))

    assert main(["bench", "--profile", "30"]) == 2
    assert "--profile needs py-spy" in capsys.readouterr().err
