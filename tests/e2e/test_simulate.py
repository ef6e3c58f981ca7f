"""`orchestrator simulate` through the real router, balancer and broker."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import env_of

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_simulate_compares_policies_without_exceeding_capacity(settings):
    env = env_of(settings)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "simulate",
            "--policies",
            "least_loaded,orchestrator",
            "--tasks",
            "80",
            "--rate",
            "40",
            "--agents",
            "6",
            "--json",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    policies = json.loads(result.stdout)["policies"]
    assert set(policies) == {"least_loaded", "orchestrator"}
    for name, figures in policies.items():
        assert {"success_rate", "utilization", "p95_wait_ms", "capacity_violations"} <= set(figures), name
        assert figures["tasks"] == figures["completed"] == 80, name
        assert figures["capacity_violations"] == 0, name
        assert 0 < figures["success_rate"] <= 1 and 0 < figures["utilization"] <= 1, name
