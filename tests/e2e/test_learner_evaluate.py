"""`orchestrator evaluate`: a real outcome log through the running router, balancer and learner."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import env_of

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DATA = Path("/work/shared/data/routerdc_7llm.csv.gz")


def a_small_log(path: Path) -> Path:
    # Three agents, two capabilities, agent-a always right on "math", agent-b on "code".
    lines = ["seq,task_seq,task_id,capability,split,prompt_chars,agent_id,score,outcome"]
    seq = 0
    for n in range(200):
        capability = ("math", "code")[n % 2]
        for agent in ("org/agent-a", "org/agent-b", "org/agent-c"):
            good = (agent, capability) in {("org/agent-a", "math"), ("org/agent-b", "code")}
            lines.append(f"{seq},{n},{capability}:{n},{capability},test,{100 + n},{agent},0,{int(good)}")
            seq += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def test_evaluate_replays_a_log_and_the_learner_steers_routing(settings, tmp_path):
    data = DATA if DATA.exists() else a_small_log(tmp_path / "log.csv")
    env = env_of(settings)
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "evaluate", "--data", str(data), "--limit", "200", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["data"]["tasks"] == 200 and figures["scored_decisions"] == 200
    for name in ("routing_success_rate", "prediction_accuracy"):
        assert 0 < figures[name] <= 1, name
    assert figures["log_loss"] > 0 and figures["roc_auc"] is not None
    assert set(figures["baselines"]) == {"random", "round_robin", "best_single", "oracle"}
    assert figures["learner_model"]["metrics"]["count"] > 0  # the learner published models while it ran
    assert "cold_start" in figures
    behind = figures["learner_behind"]  # how far the learner lagged, which decides what routing knew
    assert 0 <= behind["at_the_end"] <= behind["at_most"] <= 200
    assert "submitted" in result.stderr and "behind" in result.stderr  # progress


def test_the_learner_beats_random_routing_when_skills_differ(settings, tmp_path):
    env = env_of(settings)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "evaluate",
            "--data",
            str(a_small_log(tmp_path / "log.csv")),
            "--limit",
            "200",
            "--outstanding",
            "10",
            "--json",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["baselines"]["random"] == pytest.approx(1 / 3, abs=0.01)
    shown = {k: figures.get(k) for k in ("routing_success_rate", "roc_auc", "scored_decisions", "learner_behind")}
    assert figures["routing_success_rate"] > 0.6, (shown, result.stderr[-3000:])
    assert figures["roc_auc"] > 0.7, (shown, result.stderr[-3000:])


def test_cold_start_replays_a_late_newcomer_with_and_without_shared_experience(settings, tmp_path):
    env = env_of(settings)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "evaluate",
            "--data",
            str(a_small_log(tmp_path / "log.csv")),
            "--limit",
            "120",
            "--outstanding",
            "10",
            "--cold-start-after",
            "40",
            "--newcomer",
            "org/agent-a",
            "--first",
            "20",
            "--json",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    cold = json.loads(result.stdout)["cold_start"]
    assert (cold["newcomer"], cold["joins_after_tasks"], cold["first_tasks"]) == ("org/agent-a", 40, 20)
    for variant in ("with_sharing", "without_sharing"):
        figures = cold[variant]
        # The newcomer is the only agent ever right on math: whatever its prior, routing finds it.
        assert figures["newcomer_tasks"] == 20, variant
        assert figures["newcomer_success_rate"] > 0.5, variant
        assert 0.0 < figures["newcomer_share_after_joining"] < 1.0, variant
