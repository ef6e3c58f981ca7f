"""`orchestrator chaos`, short: two copies of every processor under load, seeded faults of every
kind the run draws, and every invariant checked from the log, the read models and the audit chain."""

import json
import os
import subprocess
import sys

import pytest

from services.settings import as_environ
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
# A single broker killed is a whole-cluster outage; broker kills belong to the three-broker run.
SHORT_RUN_FAULTS = "kill-copy,kill-both,kill-agent,hang-agent,pause-broker,restart-postgres"


def test_a_short_chaos_run_injects_its_faults_and_breaks_no_invariant(settings):
    env = {**os.environ, **as_environ(settings)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "chaos",
            "--duration",
            "80",
            "--faults",
            "8",
            "--seed",
            "13",
            "--only",
            SHORT_RUN_FAULTS,
            "--json",
        ],  # fmt: skip
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(run.stderr[-5000:])
    result = json.loads(run.stdout)
    assert result["faults_injected"] == len(result["faults"]) == 8, result["faults"]
    assert {f["fault"].split(":")[0] for f in result["faults"]} >= {"kill-copy", "kill-both", "restart-postgres"}
    broken = [c for c in result["invariants"] if not c["held"]]
    assert not broken, broken
    assert {c["name"] for c in result["invariants"]} >= {
        "acknowledged submissions are on Kafka",
        "every task ended or waits with a reason",
        "no task held twice at once",
        "no agent over its capacity",
        "read models equal a replay of the log",
        "the audit chain verifies against Kafka",
    }
    assert all(c["checked"] > 0 for c in result["invariants"])
    assert run.returncode == 0
