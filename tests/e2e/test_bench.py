"""`orchestrator bench` for a few seconds at a low rate, through every real processor and the real stack."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import env_of

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PROCESSORS = ("projector", "health", "router", "balancer", "learner", "audit")


def test_a_short_run_measures_every_figure_and_writes_its_result(settings, tmp_path):
    env = env_of(settings, BENCH_RESULTS_DIR=str(tmp_path))
    rate, duration, warmup = 10, 8, 4
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "bench",
            "--duration",
            str(duration),
            "--warmup",
            str(warmup),
            "--rate",
            str(rate),
            "--agents",
            "4",
            "--raw-messages",
            "5000",
            "--json",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["requested_rate"] == rate and result["offered_tasks_per_minute"] == rate * 60
    # Completions inside the window: never more than all the tasks submitted up to its end (a
    # backlog from the warm-up may finish in it on a busy machine).
    assert 0 < result["tasks_per_minute"] <= rate * (warmup + duration) * 60 / duration
    latency = result["routing_latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["p999"]
    assert result["routing_latency_samples"] == rate * duration  # every task of the window was assigned
    assert result["drained"] is True
    assert result["completed_total"] == result["read_model_completed"] > rate * duration
    assert result["events_per_task"] >= 5  # submitted, routed, assigned, started, completed at least
    assert result["replay_events"] >= result["completed_total"] * 5 and result["replay_events_per_second"] > 0
    assert result["raw_kafka_msgs_per_second"] > 0 and result["message_bytes"] > 100
    assert result["efficiency"] == round(result["pipeline_events_per_second"] / result["raw_kafka_msgs_per_second"], 3)
    assert set(PROCESSORS) <= set(result["lag"])
    # Every processor reads at least one record per task (the audit projector reads each one).
    by_processor = result["deliveries_per_task_by_processor"]
    assert set(by_processor) == set(PROCESSORS) and by_processor["audit"] >= result["events_per_task"] * 0.5
    assert result["deliveries_per_task"] == pytest.approx(sum(by_processor.values()), abs=0.1)
    for name in PROCESSORS:
        usage = next(u for process, u in result["processes"].items() if process.startswith(f"{name} (pid"))
        assert usage["cpu_percent"] > 0 and usage["cpu_ms_per_task"] > 0 and usage["rss_mib_max"] > 10, name
    saved = sorted(tmp_path.glob("pipeline-*"))
    assert [p.suffix for p in saved] == [".json", ".md"]
    assert json.loads(saved[0].read_text())["tasks_per_minute"] == result["tasks_per_minute"]
    assert "routing latency ms" in saved[1].read_text()
