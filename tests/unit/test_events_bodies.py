import pytest
from pydantic import ValidationError

from events.catalog import EVENT_TYPES
from events.examples import example_body
from events.values import Candidate


def variant(event_type: str, **changes):
    body = example_body(event_type)
    return type(body).model_validate({**body.model_dump(), **changes})


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_has_a_valid_example(event_type):
    body = variant(event_type)

    assert body == example_body(event_type)
    assert isinstance(getattr(body, body.key_field), str)


@pytest.mark.parametrize(
    ("event_type", "changes", "complaint"),
    [
        ("AgentRegistered", {"agent_id": ""}, "should match pattern"),
        ("AgentRegistered", {"agent_id": " padded"}, "should match pattern"),
        ("AgentRegistered", {"agent_id": "padded "}, "should match pattern"),
        ("AgentRegistered", {"agent_id": "line\nbreak"}, "should match pattern"),
        ("AgentRegistered", {"agent_id": "trailing-newline\n"}, "should match pattern"),
        ("AgentRegistered", {"agent_id": "nul\x00"}, "should match pattern"),
        ("AgentRegistered", {"agent_id": "c1\x85control"}, "should match pattern"),
        ("AgentRegistered", {"agent_id": "a" * 201}, "should match pattern"),
        ("TaskSubmitted", {"requirements": [{"name": "tab\tinside"}]}, "should match pattern"),
        ("AgentRegistered", {"capacity": 0}, "greater than or equal to 1"),
        ("AgentRegistered", {"cost_per_task": -1}, "greater than or equal to 0"),
        ("AgentRegistered", {"capacity_per_capability": {"sql": 1}}, "undeclared capabilities: sql"),
        (
            "AgentRegistered",
            {"capabilities": [{"name": "python", "proficiency": 0.5}, {"name": "python", "proficiency": 0.7}]},
            "duplicate names: python",
        ),
        ("AgentCapabilitiesChanged", {"added": [], "removed": [], "changed": []}, "no capability was added"),
        ("AgentCapabilitiesChanged", {"removed": ["sql"]}, "named more than once: sql"),
        ("AgentHealthChanged", {"current": "healthy"}, "health did not change"),
        ("AgentHealthChanged", {"current": "sleepy"}, "'healthy', 'degraded', 'unhealthy' or 'unknown'"),
        ("AgentHeartbeat", {"in_flight": -1}, "greater than or equal to 0"),
        ("TaskSubmitted", {"requirements": []}, "at least 1 item"),
        ("TaskSubmitted", {"priority": 10}, "less than or equal to 9"),
        ("TaskSubmitted", {"requirements": [{"name": "python", "min_proficiency": 1.2}]}, "less than or equal to 1"),
        ("TaskRouted", {"chosen_agent_id": "stranger"}, "stranger is not among the candidates"),
        ("TaskRouted", {"propensity": 1.01}, "less than or equal to 1"),
        ("TaskAssigned", {"attempt": 0}, "greater than or equal to 1"),
        ("TaskTimedOut", {"stage": "lunch"}, "'start', 'completion' or 'deadline'"),
        ("SkillEstimated", {"successes": 51}, "successes (51) exceed attempts (50)"),
        ("RelationshipScored", {"other_agent_id": "coder-1"}, "cannot be scored against itself"),
        ("ModelPublished", {"parameters": {"weights": object()}}, "parameters"),
    ],
)
def test_invalid_bodies_are_refused(event_type, changes, complaint):
    with pytest.raises(ValidationError) as caught:
        variant(event_type, **changes)

    assert complaint in str(caught.value)


@pytest.mark.parametrize(
    "name", ["owner/repo", "org/model-7b@v1.2", "MATH prealgebra", "@scope/pkg", "-dash", "a", "ü/名前", "a" * 200]
)
def test_agent_and_capability_names_are_accepted_as_users_write_them(name):
    registered = variant(
        "AgentRegistered", agent_id=name, capabilities=[{"name": name, "proficiency": 0.5}], capacity_per_capability={}
    )

    assert registered.agent_id == name and registered.capabilities[0].name == name


def test_routing_candidates_are_unique():
    candidate = example_body("TaskRouted").candidates[0]

    with pytest.raises(ValidationError, match="listed twice as candidates: coder-1"):
        variant("TaskRouted", candidates=[candidate, candidate])


def test_infinite_scores_are_refused():
    with pytest.raises(ValidationError, match="finite"):
        Candidate(agent_id="coder-1", score=float("inf"), propensity=1.0)


def test_a_task_may_time_out_before_it_was_ever_assigned():
    body = variant("TaskTimedOut", agent_id=None, attempt=0, stage="deadline")

    assert (body.agent_id, body.attempt) == (None, 0)
