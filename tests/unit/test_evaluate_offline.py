"""The offline routing replay: bandit feedback, with a learner at the router's pace or behind it."""

from __future__ import annotations

import random

import pytest

from bench.evaluation.offline import run_routing
from bench.evaluation.outcome_log import LoggedTask
from services.router.logic import Weights

THOMPSON = Weights(exploration="thompson", sharpness=4.0, top_k=3, load=0.0)


def log(tasks: int, seed: int = 2) -> list[LoggedTask]:
    # "good" succeeds 85% of the time, the two others 30%, on one capability
    rng = random.Random(seed)
    return [
        LoggedTask(
            f"t{n}",
            "python",
            {"prompt_chars": 100.0},
            {"good": rng.random() < 0.85, "meh": rng.random() < 0.3, "bad": rng.random() < 0.3},
        )
        for n in range(tasks)
    ]


@pytest.mark.parametrize("pace", [1.0, 0.25])
def test_the_learner_reads_at_its_pace_and_the_router_reads_every_outcome(pace):
    run = run_routing(log(400), THOMPSON, seed=1, learner_pace=pace)
    assert run.decisions == 400
    assert len(run.learner.pairs) == int(400 * pace)  # the learner scored each outcome it read, no more
    assert run.by_agent["good"] > 300


def test_a_learner_far_behind_does_not_hold_the_router_back():
    # given a learner reading one outcome for every ten the router reads
    behind = run_routing(log(1500), THOMPSON, seed=1, learner_pace=0.1)
    at_pace = run_routing(log(1500), THOMPSON, seed=1)
    # then the router, counting what the learner has not read yet, finds the good agent as soon
    assert behind.by_agent["good"] >= at_pace.by_agent["good"] - 30
