"""Given an agent and a task, the model's feature names say what each feature is, whatever the names in them."""

from __future__ import annotations

from services.success_model.beta import Beta
from services.success_model.features import Running, agent_features, features, part

SKILL = Beta(3.0, 2.0, 0.5, 2.0)


def scaling_for(capability: str, *names: str) -> dict:
    moments = {name: Running() for name in names}
    for name in names:
        for value in (10.0, 100.0, 1000.0):
            moments[name].add(value)
    return {capability: moments}


def test_each_kind_of_feature_has_its_own_prefix():
    x = features(
        "python",
        "a1",
        {"team": "core"},
        SKILL,
        4,
        {"prompt_chars": 50.0},
        scaling_for("python", "prompt_chars"),
        version="3.12",
    )
    assert set(x) == {
        "skill_logit",
        "evidence",
        "capability:python",
        "agent:a1",
        "label:team=core",
        "version:python=3.12",
        "task:python:prompt_chars",
    }


def test_a_capability_named_like_a_prefix_cannot_pose_as_an_agent():
    # Before task features had their own prefix, capability "agent" with task feature "a1" was "agent:a1".
    task = features("agent", "someone", {}, SKILL, 0, {"a1": 5.0}, scaling_for("agent", "a1"))
    assert "task:agent:a1" in task and "agent:a1" not in task


def test_separators_inside_names_are_escaped_so_different_names_never_meet():
    assert agent_features("x", {"a=b": "c"}) != agent_features("x", {"a": "b=c"})
    assert set(agent_features("label:k=v", {})) == {"agent:label%3Ak%3Dv"}
    x = features("code:review", "a1", {}, SKILL, 0, {"lines:added": 5.0}, scaling_for("code:review", "lines:added"))
    assert "task:code%3Areview:lines%3Aadded" in x


def test_ordinary_names_read_as_they_are_and_escaping_is_reversible():
    assert part("Meta-Llama-3-8B/instruct v1.0") == "Meta-Llama-3-8B/instruct v1.0"
    for name in ("%3A", "a:b=c%d", "100%", ""):
        escaped = part(name)
        assert ":" not in escaped and "=" not in escaped
        assert escaped.replace("%3A", ":").replace("%3D", "=").replace("%25", "%") == name
