"""Given what the log said, this is what the router knows."""

from __future__ import annotations

import random

from events.agents import AgentCapabilitiesChanged, AgentDeregistered, AgentHealthChanged, AgentRegistered
from events.learning import ModelPublished, RelationshipScored, SkillEstimated
from events.tasks import (
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskReassigned,
    TaskRejected,
    TaskRouted,
    TaskSubmitted,
)
from events.values import Capability, CapabilityRequirement
from services.router.app import exploration_rng
from services.router.logic import Weights, route
from services.router.state import RouterFold
from services.success_model.logistic import SuccessModel


def registered(agent_id, capacity=2, labels=None, **skills):
    return AgentRegistered(
        agent_id=agent_id,
        display_name=agent_id,
        capacity=capacity,
        cost_per_task=0.5,
        labels=labels or {},
        capabilities=tuple(
            Capability(name=n, proficiency=p, tags=("fast",)) for n, p in (skills or {"python": 0.8}).items()
        ),
    )


def assigned(task_id, agent_id="a1", attempt=1, capability="python"):
    return TaskAssigned(task_id=task_id, agent_id=agent_id, attempt=attempt, capability=capability)


def completed(task_id, agent_id="a1", attempt=1, success=True):
    return TaskCompleted(task_id=task_id, agent_id=agent_id, attempt=attempt, success=success, duration_ms=2000.0)


def given(*events) -> RouterFold:
    view = RouterFold()
    for event in events:
        view.apply(event)
    return view


def test_a_registration_declares_capabilities_capacity_cost_and_tags():
    agent = given(registered("a1", capacity=3, labels={"team": "platform"}, python=0.7, sql=0.4)).state.agents["a1"]
    assert agent.capabilities == {"python": 0.7, "sql": 0.4}
    assert (agent.capacity, agent.cost_per_task, agent.status, agent.health) == (3, 0.5, "registered", "unknown")
    assert agent.tags == {"platform", "fast"}


def test_capability_changes_deregistration_and_health_reach_the_agent():
    view = given(
        registered("a1", python=0.7, sql=0.4),
        AgentCapabilitiesChanged(
            agent_id="a1",
            added=(Capability(name="go", proficiency=0.6),),
            removed=("sql",),
            changed=(Capability(name="python", proficiency=0.9),),
            changed_by="operator",
        ),
        AgentHealthChanged(agent_id="a1", previous="unknown", current="degraded"),
    )
    assert view.state.agents["a1"].capabilities == {"python": 0.9, "go": 0.6}
    assert view.state.agents["a1"].health == "degraded" and view.state.agents["a1"].routable
    view.apply(AgentDeregistered(agent_id="a1", drain=True))
    assert view.state.agents["a1"].status == "draining" and not view.state.agents["a1"].routable


def test_a_re_registration_keeps_the_health_verdict_and_the_load():
    view = given(
        registered("a1"),
        AgentHealthChanged(agent_id="a1", previous="healthy", current="degraded"),
        assigned("t1"),
        registered("a1", capacity=5),
    )
    assert (view.state.agents["a1"].health, view.state.agents["a1"].in_flight) == ("degraded", 1)


def test_assignments_and_their_endings_set_the_load():
    view = given(registered("a1"), registered("a2"), assigned("t1"), assigned("t2"), assigned("t3", "a2"))
    assert (view.state.agents["a1"].in_flight, view.state.agents["a2"].in_flight) == (2, 1)
    view.apply(TaskRejected(task_id="t1", agent_id="a1", attempt=1, reason="busy"))
    view.apply(TaskReassigned(task_id="t2", from_agent_id="a1", to_agent_id="a2", attempt=2, reason="unhealthy"))
    view.apply(assigned("t2", "a2", attempt=2))
    assert (view.state.agents["a1"].in_flight, view.state.agents["a2"].in_flight) == (0, 2)


def test_outcomes_teach_the_record_of_the_capability_the_task_was_assigned_for():
    view = given(
        registered("a1", python=0.8, sql=0.8),
        assigned("t1", capability="sql"),
        completed("t1"),
        assigned("t2", capability="sql"),
        TaskFailed(task_id="t2", agent_id="a1", attempt=1, error="x", retryable=False),
        assigned("t3"),
        TaskRejected(task_id="t3", agent_id="a1", attempt=1, reason="no"),
    )
    record = view.state.records[("a1", "sql")]
    assert (record.successes, record.failures, record.mean_duration_ms) == (1, 1, 2000.0)
    assert ("a1", "python") not in view.state.records  # a rejection is not a try


def test_an_outcome_read_before_its_assignment_is_applied_when_the_assignment_arrives():
    view = given(registered("a1"), completed("t1"), assigned("t1"))
    assert view.state.agents["a1"].in_flight == 0 and view.state.records[("a1", "python")].successes == 1


def test_duplicates_of_assignments_and_outcomes_change_nothing():
    view = given(registered("a1"), assigned("t1"), assigned("t1"), completed("t1"), completed("t1"), assigned("t1"))
    assert view.state.agents["a1"].in_flight == 0 and view.state.records[("a1", "python")].successes == 1


def test_an_unhealthy_agent_holds_nothing_any_more():
    view = given(
        registered("a1"),
        assigned("t1"),
        assigned("t2"),
        AgentHealthChanged(agent_id="a1", previous="degraded", current="unhealthy", in_flight_task_ids=("t1", "t2")),
    )
    assert view.state.agents["a1"].in_flight == 0 and not view.state.agents["a1"].routable
    view.apply(TaskReassigned(task_id="t1", from_agent_id="a1", attempt=2, reason="unhealthy"))
    assert view.loads["a1"] == 0


def test_a_skill_estimate_replaces_the_prior_and_the_counts_it_already_includes():
    view = given(
        registered("a1"),
        assigned("t1"),
        completed("t1"),
        SkillEstimated(agent_id="a1", capability="python", proficiency=0.3, confidence=0.8, successes=1, attempts=4),
    )
    record = view.state.records[("a1", "python")]
    assert (record.estimate, record.estimate_confidence, record.successes, record.failures) == (0.3, 0.8, 0, 0)
    assert record.mean_duration_ms == 2000.0


def test_relationships_model_version_and_job_members():
    view = given(
        registered("a1"),
        registered("a2"),
        RelationshipScored(
            agent_id="a1", other_agent_id="a2", joint_tasks=5, joint_success_rate=0.9, lift=1.4, confidence=0.5
        ),
        ModelPublished(
            model_id="success",
            model_version="v7",
            kind="logistic-regression",
            parameters=SuccessModel().parameters(),
            trained_on_events=10,
        ),
        TaskSubmitted(
            task_id="t1", submitter="c", job_id="job-1", requirements=(CapabilityRequirement(name="python"),)
        ),
        assigned("t1", "a2"),
    )
    assert view.state.relationships[("a1", "a2")] == view.state.relationships[("a2", "a1")] == 1.4
    assert view.state.model_version == "v7" and view.state.job_members == {"job-1": frozenset({"a2"})}


def test_only_agent_changes_make_waiting_tasks_worth_routing_again():
    view = given(registered("a1"))
    version = view.registry_version
    view.apply(assigned("t1"))
    view.apply(completed("t1"))
    assert view.registry_version == version
    view.apply(AgentHealthChanged(agent_id="a1", previous="unknown", current="healthy"))
    assert view.registry_version > version


def test_a_decision_is_reproducible_from_the_task_and_the_seed():
    view = given(*(registered(f"a{i}", python=0.8) for i in range(4)))
    task = TaskSubmitted(task_id="t-42", submitter="c", requirements=(CapabilityRequirement(name="python"),))
    weights = Weights(temperature=1.0)
    decisions = {route(task, view.state, weights, exploration_rng(7, "t-42")).chosen_agent_id for _ in range(20)}
    assert len(decisions) == 1
    others = {route(task, view.state, weights, exploration_rng(seed, "t-42")).chosen_agent_id for seed in range(40)}
    assert len(others) > 1
    assert isinstance(route(task, view.state, weights, random.Random(1)), TaskRouted)


def test_a_task_read_back_as_routed_is_known_so_its_submission_is_not_decided_twice():
    view = given(registered("a1"))
    task = TaskSubmitted(task_id="t-7", submitter="c", requirements=(CapabilityRequirement(name="python"),))
    assert not view.already_routed("t-7")

    view.apply(route(task, view.state, Weights(), random.Random(1)))

    assert view.already_routed("t-7") and not view.already_routed("t-8")
