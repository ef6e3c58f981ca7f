"""Trends, insights and recommendations, read off the learning read models on real PostgreSQL."""

import pytest

from events.envelope import make_event
from events.learning import ModelPublished, SkillShiftDetected
from tests.factories import at
from tests.integration.test_learning_read_models import rows, schemas, skill  # noqa: F401 - schemas is a fixture
from tests.projection_contract import at_offsets

pytestmark = pytest.mark.integration


def shift(agent_id: str, direction: str, before: float, after: float, *, t: float, capability: str = "python"):
    return make_event(
        SkillShiftDetected(
            agent_id=agent_id, capability=capability, direction=direction, before=before, after=after, attempts=30
        ),
        producer="learner",
        occurred_at=at(t),
    )


def model(version: str, weights: dict, *, t: float):
    return make_event(
        ModelPublished(
            model_id="success",
            model_version=version,
            kind="logistic-regression",
            parameters={"format": "logistic/1", "intercept": 0.0, "weights": weights, "trained_on": 100},
            trained_on_events=100,
        ),
        producer="learner",
        occurred_at=at(t),
    )


async def test_a_rising_skill_has_a_positive_slope_and_a_forecast_above_its_estimate(schemas):
    view = await schemas("t")
    rising = [skill("climber", 0.5 + 0.02 * n, t=n, attempts=10 + 5 * n) for n in range(12)]
    flat = [skill("steady", 0.7, t=n, attempts=10 + 5 * n) for n in range(3)]
    await view.apply(at_offsets(rising + flat))

    trends = {r["agent_id"]: r for r in await rows(view, "SELECT * FROM skill_trends")}
    climber, steady = trends["climber"], trends["steady"]
    assert climber["estimates"] == 10  # the last 10 estimates only
    assert climber["proficiency"] == pytest.approx(0.72)
    assert climber["slope_per_attempt"] == pytest.approx(0.004)  # 0.02 per 5 attempts
    assert climber["forecast_in_20_attempts"] == pytest.approx(0.72 + 20 * 0.004)
    assert steady["slope_per_attempt"] == 0 and steady["forecast_in_20_attempts"] == pytest.approx(0.7)


async def test_the_latest_models_weights_say_which_task_features_labels_and_versions_go_with_failure(schemas):
    view = await schemas("i")
    await view.apply(
        at_offsets(
            [
                model("success-100", {"skill_logit": 1.0, "task:gsm8k:prompt_chars": 0.3, "label:team=old": 0.5}, t=1),
                model(
                    "success-200",
                    {
                        "skill_logit": 1.0,
                        "capability:gsm8k": -0.2,
                        "agent:a1": 0.1,
                        "task:gsm8k:prompt_chars": -0.4,
                        "task:mbpp:prompt_chars": 0.1,
                        # a capability and a feature whose names hold the separators
                        "task:code%3Areview:lines%3Dadded": -0.3,
                        "agent:task%3Ax": 0.7,
                        "label:team=platform": 0.25,
                        "label:style=terse": -0.15,
                        "label:eval=100%25": 0.05,
                        "version:gsm8k=2.1": 0.35,
                        "version:gsm8k=1.0": -0.05,
                    },
                    t=2,
                ),
            ]
        )
    )

    features = await rows(view, "SELECT * FROM insights_task_features ORDER BY weight")
    assert [(r["model_version"], r["capability"], r["feature"], r["weight"], r["goes_with"]) for r in features] == [
        ("success-200", "gsm8k", "prompt_chars", -0.4, "failure"),
        ("success-200", "code:review", "lines=added", -0.3, "failure"),
        ("success-200", "mbpp", "prompt_chars", 0.1, "success"),
    ]
    practices = await rows(
        view, "SELECT label, value, weight, goes_with, practice FROM insights_practices ORDER BY weight"
    )
    assert [tuple(r.values()) for r in practices] == [
        ("style", "terse", -0.15, "failure", "label"),
        ("gsm8k", "1.0", -0.05, "failure", "capability_version"),
        ("eval", "100%", 0.05, "success", "label"),
        ("team", "platform", 0.25, "success", "label"),
        ("gsm8k", "2.1", 0.35, "success", "capability_version"),
    ]


async def test_recommendations_follow_the_latest_change_and_the_number_of_competent_agents(schemas):
    view = await schemas("r")
    await view.apply(
        at_offsets(
            [
                skill("a1", 0.8, t=1, attempts=40),
                skill("a2", 0.7, t=1, attempts=40),
                skill("a3", 0.9, t=1, capability="sql", attempts=40),
                skill("a4", 0.9, t=1, capability="sql", attempts=5),
                shift("a1", "degraded", 0.8, 0.5, t=2),
                shift("a1", "improved", 0.5, 0.8, t=3),  # recovered since
                shift("a2", "degraded", 0.85, 0.7, t=4),
            ]
        )
    )

    found = await rows(
        view, "SELECT action, capability, agent_id, reason FROM recommendations ORDER BY action, capability, agent_id"
    )
    assert [(r["action"], r["capability"], r["agent_id"]) for r in found] == [
        ("investigate", "python", "a2"),
        ("recruit", "sql", None),
        ("route_more", "python", "a1"),
    ]
    assert found[0]["reason"] == "a2 on python: degraded from 0.85 to 0.70"
    assert found[1]["reason"].startswith("1 competent agent(s) on sql")
