"""`orchestrator chaos`, short, on a three-broker cluster of the test's own: two copies of every
processor under load, seeded faults (a broker killed and a broker paused among them), and every
invariant checked from the log, the read models and the audit chain."""

import json
import subprocess
import sys

import pytest

from services.settings import as_environ
from tests.cluster import Cluster
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
# Seed 21 draws: one copy of the projector, the balancer and the router killed, then both copies of
# the projector; a broker killed and another paused; PostgreSQL restarted.
FAULTS, SEED, DURATION_S = 7, 21, 60


def test_a_short_chaos_run_on_three_brokers_injects_its_faults_and_breaks_no_invariant(settings, tmp_path):
    cluster = Cluster(tmp_path / "cluster")
    try:
        cluster.run("up")
        exported = dict(
            line.removeprefix("export ").split("=", 1)
            for line in cluster.run("env").splitlines()
            if line.startswith("export")
        )
        # The suite's PostgreSQL (and its credentials), the cluster's Kafka in plain text.
        env = {
            **cluster.env,
            **{k: v for k, v in as_environ(settings).items() if not k.startswith("KAFKA_")},
            "KAFKA_BOOTSTRAP_SERVERS": exported["KAFKA_BOOTSTRAP_SERVERS"],
            "ORCHESTRATOR_REPLICATION_FACTOR": exported["ORCHESTRATOR_REPLICATION_FACTOR"],
            "BENCH_RESULTS_DIR": str(tmp_path / "results"),
        }
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.cli",
                "chaos",
                "--duration",
                str(DURATION_S),
                "--faults",
                str(FAULTS),
                "--seed",
                str(SEED),
                "--json",
            ],  # fmt: skip
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        cluster.run("down", timeout=90)
    print(run.stderr[-6000:])
    result = json.loads(run.stdout)
    assert result["brokers"] == 3
    assert result["faults_injected"] == len(result["faults"]) == FAULTS, result["faults"]
    kinds = {f["fault"].split(":")[0] for f in result["faults"]}
    assert kinds >= {"kill-copy", "kill-both", "kill-broker", "pause-broker"}, kinds
    broken = [c for c in result["invariants"] if not c["held"]]
    assert not broken, json.dumps(broken, indent=1)  # whole: which process exited and its last words
    assert {c["name"] for c in result["invariants"]} >= {
        "acknowledged submissions are on Kafka",
        "every task ended or waits with a reason",
        "every acknowledged task completed in the drain",
        "no task held twice at once",
        "no agent over its capacity",
        "read models equal a replay of the log",
        "the audit chain verifies against Kafka",
    }
    assert all(c["checked"] > 0 for c in result["invariants"])
    assert run.returncode == 0
    assert [p.suffix for p in sorted((tmp_path / "results").iterdir())] == [".json", ".md"]
