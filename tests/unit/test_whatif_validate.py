"""The validation bench on a small dense log whose truths are worked out by hand."""

import csv
import random

import pytest

from bench.evaluation.online import load
from bench.evaluation.whatif.policies import AgentPolicy, RandomPolicy, RouterPolicy
from bench.evaluation.whatif.validate import POLICIES, logged_run, replayed, table, truth_on_the_log, validate
from services.router.logic import Weights

SKILL = {"good": 0.9, "fair": 0.5, "poor": 0.1}


@pytest.fixture
def dense_log(tmp_path):
    path = tmp_path / "log.csv"
    rng = random.Random(2)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["seq", "task_seq", "task_id", "capability", "prompt_chars", "agent_id", "outcome"])
        seq = 0
        for task in range(120):
            for agent, skill in SKILL.items():
                writer.writerow([seq, task, f"t{task}", "qa", 100, agent, int(rng.random() < skill)])
                seq += 1
    return load(str(path))


def test_the_truths_are_the_recorded_outcomes(dense_log):
    decisions = logged_run(dense_log, Weights(temperature=0.1, top_k=10), seed=0)
    assert len(decisions) == 120 and all(d.propensity > 0 for d in decisions)
    every_agent_alike = sum(sum(t.outcomes.values()) / 3 for t in dense_log) / 120
    assert truth_on_the_log(RandomPolicy(), decisions, dense_log) == pytest.approx(every_agent_alike)
    assert replayed(RandomPolicy(), dense_log, 0) == pytest.approx(every_agent_alike)
    good = AgentPolicy("good", "good", RouterPolicy("g", Weights(top_k=1)))
    assert replayed(good, dense_log, 0) == pytest.approx(sum(t.outcomes["good"] for t in dense_log) / 120)
    assert truth_on_the_log(good, decisions, dense_log) == replayed(good, dense_log, 0)


def test_every_policy_and_seed_has_its_intervals_and_coverage(dense_log):
    result = validate(dense_log, seeds=2, resamples=50, log=lambda line: None)
    assert len(result["rows"]) == 2 * len(POLICIES)
    for row in result["rows"]:
        for name in ("ips", "snips", "dr"):
            assert row[name]["low"] <= row[name]["value"] <= row[name]["high"]
    assert {r["policy"] for r in result["rows"]} >= {"best-single (good)", "random", "greedy"}
    assert set(result["coverage"]) == {"on_log", "replayed"}
    assert "| coverage of | IPS | SNIPS | DR |" in table(result)
