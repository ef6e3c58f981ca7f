"""The learner's fold over the log: what it publishes for each input, and that a replay rebuilds it."""

import random

from events.learning import ModelPublished, RelationshipScored, SkillEstimated, SkillShiftDetected
from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskHandedOff, TaskSubmitted
from services.learner.state import LearnerFold
from tests import factories as f

AGENTS = ("agent-1", "agent-2", "agent-3")


def given(*events, publish_every: int = 100) -> LearnerFold:
    view = LearnerFold(publish_every=publish_every)
    for event in events:
        view.apply(event.body if hasattr(event, "body") else event)
    return view


def fleet():
    return [f.registered(a, capabilities=(("python", 0.5), ("sql", 0.5)), share_experience=True) for a in AGENTS]


def attempt(
    task_id: str,
    agent_id: str,
    success: bool,
    *,
    capability: str = "python",
    job_id: str | None = None,
    attempt_number: int = 1,
    predicted: float | None = 0.6,
):
    return [
        TaskSubmitted(
            task_id=task_id,
            submitter="client",
            job_id=job_id,
            features={"prompt_chars": 300.0},
            requirements=f.submitted(task_id, capability=capability).body.requirements,
        ),
        f.routed(task_id, agent_id).body.model_copy(update={"predicted_success": predicted}),
        TaskAssigned(task_id=task_id, agent_id=agent_id, attempt=attempt_number, capability=capability),
        TaskCompleted(task_id=task_id, agent_id=agent_id, attempt=attempt_number, success=success),
    ]


def outcome_log(n: int = 300, seed: int = 3):
    rng, skill = random.Random(seed), {"agent-1": 0.8, "agent-2": 0.5, "agent-3": 0.2}
    events = list(fleet())
    for i in range(n):
        agent = AGENTS[i % 3]
        events += attempt(
            f"task-{i}", agent, rng.random() < skill[agent], capability=("python", "sql")[i % 2], job_id=f"job-{i // 6}"
        )
    return events


def estimates_of(view: LearnerFold) -> list[SkillEstimated]:
    return [e for e in view.snapshot() if isinstance(e, SkillEstimated)]


def test_a_registration_publishes_each_declared_capabilitys_cold_start_estimate():
    view = LearnerFold()
    [python, sql] = view.apply(fleet()[0].body)
    assert (python.capability, sql.capability) == ("python", "sql")
    assert python.attempts == 0 and python.proficiency == 0.5


def test_an_outcome_publishes_the_agents_new_estimate():
    view = given(*fleet())
    *context, completed = attempt("task-1", "agent-1", True)
    assert [view.apply(e) for e in context] == [[], [], []]

    [skill] = view.apply(completed)
    assert (skill.agent_id, skill.capability, skill.successes, skill.attempts) == ("agent-1", "python", 1, 1)
    assert skill.proficiency > 0.5


def test_an_outcome_read_before_its_assignment_is_learned_when_the_assignment_arrives():
    view = given(*fleet())
    submitted, routed, assigned, completed = attempt("task-1", "agent-2", False)
    view.apply(submitted)
    assert view.apply(completed) == []

    [skill] = view.apply(assigned)
    assert (skill.agent_id, skill.successes, skill.attempts) == ("agent-2", 0, 1)


def test_a_failure_counts_as_an_unsuccessful_attempt():
    view = given(*fleet(), *attempt("task-1", "agent-1", True)[:3])
    [skill] = view.apply(TaskFailed(task_id="task-1", agent_id="agent-1", attempt=1, error="crashed", retryable=False))
    assert (skill.successes, skill.attempts) == (0, 1)


def test_every_n_outcomes_a_model_and_the_estimates_others_moved_are_published():
    view = given(*fleet(), publish_every=2)
    first = [out for e in attempt("task-1", "agent-1", True) for out in view.apply(e)]
    second = [out for e in attempt("task-2", "agent-2", True) for out in view.apply(e)]

    assert not any(isinstance(e, ModelPublished) for e in first)
    [model] = [e for e in second if isinstance(e, ModelPublished)]
    assert model.trained_on_events == 2 and model.parameters["format"] == "logistic/1"
    assert {"accuracy", "router_accuracy", "router_log_loss"} <= set(model.metrics)
    refreshed = {(e.agent_id, e.capability) for e in second if isinstance(e, SkillEstimated)}
    # every agent's on the capability learned about, and the learning agents' on their other capabilities,
    # whose priors carry their level
    assert refreshed == {
        ("agent-1", "python"),
        ("agent-2", "python"),
        ("agent-3", "python"),
        ("agent-1", "sql"),
        ("agent-2", "sql"),
    }


def test_agents_of_one_job_are_scored_as_a_pair():
    view = given(*fleet(), *attempt("task-1", "agent-1", True, job_id="job-1"))
    out = [o for e in attempt("task-2", "agent-2", True, job_id="job-1") for o in view.apply(e)]
    pairs = {(e.agent_id, e.other_agent_id) for e in out if isinstance(e, RelationshipScored)}
    assert pairs == {("agent-1", "agent-2"), ("agent-2", "agent-1")}


def test_a_hand_off_makes_the_two_agents_a_pair():
    view = given(*fleet(), *attempt("task-1", "agent-1", True)[:3])
    view.apply(
        TaskHandedOff(
            task_id="task-1", from_agent_id="agent-1", to_agent_id="agent-3", attempt=1, reason="needs a reviewer"
        )
    )
    out = [
        o
        for e in [
            TaskAssigned(task_id="task-1", agent_id="agent-3", attempt=2, capability="python"),
            TaskCompleted(task_id="task-1", agent_id="agent-3", attempt=2, success=True),
        ]
        for o in view.apply(e)
    ]
    assert {(e.agent_id, e.other_agent_id) for e in out if isinstance(e, RelationshipScored)} == {
        ("agent-1", "agent-3"),
        ("agent-3", "agent-1"),
    }


def test_a_changed_skill_is_published_as_a_shift():
    view = given(*fleet())
    out = []
    for i in range(160):
        out += [o for e in attempt(f"task-{i}", "agent-1", i < 80) for o in view.apply(e)]
    [shift, *_] = [e for e in out if isinstance(e, SkillShiftDetected)]
    assert (shift.agent_id, shift.capability, shift.direction) == ("agent-1", "python", "degraded")
    assert shift.after < shift.before


def test_replaying_the_same_outcomes_rebuilds_the_same_estimates_and_model():
    log = outcome_log()
    live, rebuilt = given(*log, publish_every=50), given(*log, publish_every=50)

    assert estimates_of(live) == estimates_of(rebuilt)
    assert live.model().parameters == rebuilt.model().parameters
    assert live.outcomes == 300
    best = max(estimates_of(live), key=lambda e: e.proficiency)
    assert best.agent_id == "agent-1"


def test_what_the_learner_would_publish_is_the_same_on_a_replay():
    log = outcome_log(120)
    first, second = LearnerFold(publish_every=25), LearnerFold(publish_every=25)
    assert [first.apply(e) for e in log] == [second.apply(e) for e in log]


def test_a_capability_version_is_a_practice_the_model_learns_across_the_agents_declaring_it():
    # Given two agents on python 2 who mostly succeed and one on python 1 who mostly fails
    from events.agents import AgentCapabilitiesChanged, AgentRegistered
    from events.values import Capability, MemoryProfile
    from services.learner.logic import assess

    def on(agent_id, version):
        return AgentRegistered(
            agent_id=agent_id,
            display_name=agent_id,
            capacity=2,
            memory_profile=MemoryProfile(store_kind="none", share_experience=True),
            capabilities=(Capability(name="python", proficiency=0.5, version=version),),
        )

    rng, skill = random.Random(5), {"agent-1": 0.85, "agent-2": 0.2, "agent-3": 0.85}
    events = [on("agent-1", "2"), on("agent-2", "1"), on("agent-3", "2")]
    for i in range(600):
        agent = AGENTS[i % 3]
        events += attempt(f"task-{i}", agent, rng.random() < skill[agent])

    # When the learner has folded their outcomes
    view = given(*events, publish_every=50)

    # Then its model weighs version 2 above version 1, and each agent's features name its version
    weights = view.state.model.parameters()["weights"]
    assert weights["version:python=2"] > 0 > weights["version:python=1"]
    assert "version:python=2" in assess(view.state, "agent-1", "python")[1]
    assert "version:python=1" in assess(view.state, "agent-2", "python")[1]

    # And when agent-2 upgrades, its features follow
    view.apply(
        AgentCapabilitiesChanged(
            agent_id="agent-2", changed=(Capability(name="python", proficiency=0.5, version="2"),), changed_by="ops"
        )
    )
    x = assess(view.state, "agent-2", "python")[1]
    assert "version:python=2" in x and "version:python=1" not in x
