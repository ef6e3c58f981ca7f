"""`orchestrator serve learner` restarted on the real broker: it publishes what outcomes read while down led to."""

import pytest

from events.codec import decode
from events.learning import SkillEstimated, SkillShiftDetected
from events.topics import EVENT_TOPICS
from services import kafka
from services.learner.marks import KafkaMarks
from tests import factories as f
from tests.e2e.helpers import publish_all, wait_for
from tests.e2e.test_routing import serving

pytestmark = pytest.mark.e2e


def outcomes(first: int, last: int, *, success: bool) -> list:
    return [
        e
        for i in range(first, last)
        for e in (
            f.submitted(f"task-{i}", t=i),
            f.assigned(f"task-{i}", "agent-1", t=i + 0.1),
            f.completed(f"task-{i}", "agent-1", t=i + 0.2, success=success),
        )
    ]


async def skills_topic(settings) -> list:
    """Every event on the skills topic, as envelopes."""
    specs = [spec for spec in EVENT_TOPICS if spec.name == "skills"]
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    try:
        partitions = kafka.partitions(settings, specs)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends, seen = await consumer.end_offsets(partitions), []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [decode(r.value) for r in records]
        return seen
    finally:
        await consumer.stop()


async def marked_up_to_the_end(settings) -> bool:
    ends = await kafka.end_offsets(settings, [spec for spec in EVENT_TOPICS if spec.name == "task-outcomes"])
    marks = await KafkaMarks(settings).read()
    return all(marks.get((tp.topic, tp.partition)) == end for tp, end in ends.items())


async def test_a_restarted_learner_publishes_the_shift_that_outcomes_read_while_it_was_down_caused(settings, tmp_path):
    await kafka.ensure_topics(settings)
    await publish_all(
        settings,
        [f.registered(a, capabilities=(("python", 0.5),), share_experience=True) for a in ("agent-1", "agent-2")],
    )
    with serving("learner", settings, tmp_path):
        await publish_all(settings, outcomes(0, 80, success=True))
        await wait_for(lambda: marked_up_to_the_end(settings), timeout=60, what="the learner to publish all 80")
    assert not [e for e in await skills_topic(settings) if isinstance(e.body, SkillShiftDetected)]

    missed = outcomes(80, 160, success=False)  # while no learner runs
    await publish_all(settings, missed)

    with serving("learner", settings, tmp_path, run="-restarted"):

        async def shifts():
            seen = await skills_topic(settings)
            estimates = [e.body for e in seen if isinstance(e.body, SkillEstimated) and e.body.outcomes_read == 160]
            return estimates and [e for e in seen if isinstance(e.body, SkillShiftDetected)]

        shifts = await wait_for(shifts, timeout=60, what="the restarted learner's estimates")

    assert {(s.body.agent_id, s.body.direction) for s in shifts} == {("agent-1", "degraded")}
    assert {s.causation_id for s in shifts} <= {e.event_id for e in missed}
