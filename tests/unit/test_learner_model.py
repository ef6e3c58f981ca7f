import json
import math
import random

import numpy as np
import pytest
from pydantic import ValidationError

from services.learner.cohort import AgentProfile
from services.learner.logic import LearnerState, Outcome, assess, learn, publish_model, register
from services.learner.metrics import PrequentialMetrics, roc_auc
from services.success_model.logistic import LinearPredictor


def trained(outcomes=600, seed=7) -> LearnerState:
    state = LearnerState()
    for agent in ("a", "b"):
        register(
            state,
            AgentProfile(
                agent_id=agent, declared={"python": 0.5, "sql": 0.5}, labels={"family": agent}, share_experience=True
            ),
        )
    rng = random.Random(seed)
    for n in range(outcomes):
        agent, capability, chars = rng.choice("ab"), rng.choice(("python", "sql")), rng.randint(20, 8000)
        # long python prompts fail more: something for the task feature to learn
        p = 0.8 - 0.5 * (capability == "python") * (chars > 4000)
        learn(
            state,
            Outcome(
                task_id=f"t{n}",
                agent_id=agent,
                capability=capability,
                success=rng.random() < p,
                task_features={"prompt_chars": chars},
            ),
        )
    return state


# --- the published model --------------------------------------------------------------


def test_the_published_model_is_plain_json_and_rebuilds_a_predictor_that_predicts_the_same():
    state = trained()
    published = publish_model(state)
    wire = json.dumps(published.parameters)  # nothing but JSON: no pickle, no objects
    predictor = LinearPredictor.from_parameters(json.loads(wire))
    assert published.trained_on_events == 600 and published.model_version == state.model_version
    for agent in ("a", "b"):
        for capability in ("python", "sql"):
            for chars in (50, 3000, 7000):
                prediction, x = assess(state, agent, capability, {"prompt_chars": chars})
                assert predictor.probability(x) == pytest.approx(prediction.probability, abs=1e-12)


def test_the_model_learned_what_the_task_feature_says():
    state = trained(outcomes=3000)
    short = assess(state, "a", "python", {"prompt_chars": 100})[0].probability
    long = assess(state, "a", "python", {"prompt_chars": 7900})[0].probability
    assert short > long + 0.1


def test_published_metrics_are_prequential_and_finite():
    metrics = publish_model(trained()).metrics
    assert {"accuracy", "log_loss", "brier", "roc_auc", "calibration_error"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.update(format="pickle/1"),
        lambda p: p.update(extra="field"),
        lambda p: p["weights"].update(skill_logit="1.0"),  # a number in a string is not a number
        lambda p: p.update(intercept=float("nan")),
        lambda p: p["weights"].update({"x" * 401: 1.0}),
        lambda p: p["scaling"]["python"].update(prompt_chars=[3, 1.0]),
        lambda p: p.pop("weights"),
    ],
)
def test_a_malformed_model_is_rejected(tamper):
    parameters = json.loads(json.dumps(publish_model(trained(outcomes=50)).parameters))
    tamper(parameters)
    with pytest.raises(ValidationError):
        LinearPredictor.from_parameters(parameters)


def test_an_untrained_model_predicts_the_beta_posterior():
    state = LearnerState()
    register(state, AgentProfile(agent_id="a", declared={"python": 0.7}))
    prediction, x = assess(state, "a", "python")
    assert prediction.probability == pytest.approx(prediction.proficiency) == pytest.approx(0.7)


# --- prequential metrics ------------------------------------------------------------------


def test_roc_auc_is_the_chance_a_success_is_ranked_above_a_failure():
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1.0])) == pytest.approx(0.75)
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1.0])) == pytest.approx(0.5)
    assert roc_auc(np.array([0.2, 0.3]), np.array([1.0, 1.0])) is None


def test_metrics_cover_the_latest_window_only():
    metrics = PrequentialMetrics(window=4)
    for p, y in [(0.9, False)] * 10 + [(0.8, True), (0.2, False), (0.7, True), (0.4, False)]:
        metrics.add(p, y)
    summary = metrics.summary()
    assert summary["count"] == 4 and summary["accuracy"] == 1.0
    assert summary["brier"] == pytest.approx((0.04 + 0.04 + 0.09 + 0.16) / 4)
    assert summary["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.8) + math.log(0.7) + math.log(0.6)) / 4)


def test_calibration_compares_predicted_and_observed_rates_by_bucket():
    metrics = PrequentialMetrics(window=None, buckets=10)
    for n in range(100):
        metrics.add(0.75, n % 2 == 0)  # says 75%, happens 50%
    (bucket,) = metrics.calibration()
    assert (bucket.lower, bucket.upper, bucket.count) == (0.7, 0.8, 100)
    assert bucket.mean_predicted == pytest.approx(0.75) and bucket.observed_rate == pytest.approx(0.5)
    assert metrics.summary()["calibration_error"] == pytest.approx(0.25)
