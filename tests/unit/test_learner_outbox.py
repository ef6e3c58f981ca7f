"""The learner's outbox: the latest estimate per agent and capability, facts of their own kept whole."""

from events.envelope import make_event
from events.learning import RelationshipScored, SkillEstimated, SkillShiftDetected
from events.tasks import TaskCompleted
from services.learner.outbox import Outbox


def estimate(agent: str, capability: str, successes: int, attempts: int) -> SkillEstimated:
    return SkillEstimated(
        agent_id=agent, capability=capability, proficiency=0.5, confidence=0.5, successes=successes, attempts=attempts
    )


def outcome(task: str):
    return make_event(TaskCompleted(task_id=task, agent_id="a", attempt=1), producer="a")


def test_a_newer_estimate_of_the_same_agent_and_capability_replaces_the_older_and_takes_its_cause():
    outbox = Outbox()
    first, second = outcome("t-1"), outcome("t-2")
    outbox.add([estimate("a", "python", 1, 1)], first)
    outbox.add([estimate("b", "python", 0, 1)], first)
    outbox.add([estimate("a", "python", 2, 2)], second)

    drained = outbox.drain()
    assert [(body.agent_id, body.successes, cause.body.task_id) for body, cause in drained] == [
        ("b", 0, "t-1"),
        ("a", 2, "t-2"),
    ]
    assert len(outbox) == 0 and outbox.drain() == []


def test_shifts_are_never_merged_and_relationships_merge_per_pair():
    outbox = Outbox()
    shift = SkillShiftDetected(
        agent_id="a", capability="python", direction="degraded", before=0.9, after=0.4, attempts=20
    )
    pair = dict(joint_tasks=3, joint_success_rate=0.5, confidence=0.2)
    outbox.add([shift, RelationshipScored(agent_id="a", other_agent_id="b", lift=1.1, **pair)], None)
    outbox.add(
        [
            shift,
            RelationshipScored(agent_id="a", other_agent_id="b", lift=1.3, **pair),
            RelationshipScored(agent_id="b", other_agent_id="a", lift=1.3, **pair),
        ],
        None,
    )

    bodies = [body for body, _ in outbox.drain()]
    assert [type(b).__name__ for b in bodies] == [
        "SkillShiftDetected",
        "SkillShiftDetected",
        "RelationshipScored",
        "RelationshipScored",
    ]
    assert [(b.agent_id, b.lift) for b in bodies[2:]] == [("a", 1.3), ("b", 1.3)]
