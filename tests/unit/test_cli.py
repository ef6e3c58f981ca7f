import json
import subprocess
import sys

from services.cli import main
from services.processors import yield_cpu_if_off_path
from services.settings import Settings


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_topics_list_json_describes_the_catalog():
    result = run_cli("topics", "list", "--json")

    assert result.returncode == 0, result.stderr
    topics = {t["name"]: t for t in json.loads(result.stdout)}
    assert topics["orchestrator.tasks"]["retention_ms"] == -1
    assert "TaskSubmitted" in topics["orchestrator.tasks"]["events"]
    assert topics["orchestrator.assignments"]["key"] == "agent_id"
    assert [t["dead_letter"] for t in topics.values()].count(True) == 1
    fields = {"name", "events", "key", "partitions", "retention_ms", "dead_letter"}
    assert all(fields <= set(t) for t in topics.values())


def test_the_partition_of_a_key_is_kafkas_murmur2_choice():
    result = run_cli("topics", "partition", "coder-1")

    assert (result.returncode, result.stdout.strip()) == (0, "5")  # as the Java client computes it


def test_every_subcommand_has_help(capsys):
    for args in (
        ["--help"],
        ["topics", "ensure", "--help"],
        ["topics", "list", "--help"],
        ["topics", "partition", "--help"],
        ["publish", "--help"],
        ["dlq", "list", "--help"],
        ["dlq", "replay", "--help"],
        ["replay", "--help"],
        ["serve", "--help"],
        ["config", "--help"],
    ):
        try:
            main(args)
        except SystemExit as exit_:
            assert exit_.code == 0, args
        assert "usage: orchestrator" in capsys.readouterr().out


def test_publishing_an_invalid_event_is_refused_before_it_reaches_kafka():
    result = run_cli("publish", "--type", "TaskSubmitted", stdin='{"task_id": "t-1", "submitter": "me"}')

    assert result.returncode == 2
    assert "invalid TaskSubmitted body" in result.stderr and "requirements" in result.stderr


def test_a_bad_setting_is_named():
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "config"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PROJECTOR_BATCH_SIZE": "many"},
        timeout=60,
    )

    assert result.returncode == 2
    assert "PROJECTOR_BATCH_SIZE must be a non-negative integer" in result.stderr


def test_a_record_parked_by_several_processors_is_re_injected_once():
    from services.deadletter.park import Parked
    from services.deadletter.reinject import _once_per_origin

    def parked(offset, processor, origin_offset=7, attempt=1):
        return Parked(
            offset=offset,
            partition=0,
            key=b"k",
            value=b"v",
            origin_topic="p.tasks",
            origin_partition=2,
            origin_offset=origin_offset,
            error_class="MalformedEvent",
            error_message="",
            attempt=attempt,
            processor=processor,
            failed_at="",
            original_headers=(),
        )

    unique = _once_per_origin(
        [
            parked(0, "projector"),
            parked(1, "router"),
            parked(2, "balancer"),
            parked(3, "projector", origin_offset=8),
            parked(4, "router", attempt=2),
        ]
    )
    assert [(p.offset, p.processor) for p in unique] == [(0, "projector"), (3, "projector"), (4, "router")]


def test_processors_off_the_routing_path_yield_the_cpu_and_the_path_keeps_its_priority(monkeypatch):
    increments = []
    monkeypatch.setattr("services.processors.os.nice", increments.append)
    defaults, equal = Settings.from_env({}), Settings.from_env({"OFF_PATH_NICE": "0"})

    given = {
        name: yield_cpu_if_off_path(name, defaults)
        for name in ("projector", "learner", "audit", "router", "balancer", "health")
    }

    assert given == {"projector": 10, "learner": 10, "audit": 10, "router": 0, "balancer": 0, "health": 0}
    assert increments == [10, 10, 10]
    assert yield_cpu_if_off_path("learner", equal) == 0 and increments == [10, 10, 10]
