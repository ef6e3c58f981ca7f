"""`orchestrator serve learner` on the real broker: its state is rebuilt from the log at start."""

import random

import pytest

from events.codec import decode
from events.learning import ModelPublished, SkillEstimated
from events.topics import topic_name
from services import kafka
from services.learner.state import LearnerFold
from tests import factories as f
from tests.e2e.helpers import publish_all, wait_for
from tests.e2e.test_routing import serving

pytestmark = pytest.mark.e2e


def outcome_log(n: int = 60):
    rng, skill = random.Random(11), {"agent-1": 0.9, "agent-2": 0.3}
    events = [f.registered(a, capabilities=(("python", 0.5),), share_experience=True) for a in skill]
    for i in range(n):
        agent = ("agent-1", "agent-2")[i % 2]
        events += [
            f.submitted(f"task-{i}", t=i),
            f.assigned(f"task-{i}", agent, t=i + 0.1),
            f.completed(f"task-{i}", agent, t=i + 0.2, success=rng.random() < skill[agent]),
        ]
    return events


async def published(settings) -> list:
    consumer = kafka.consumer(settings, *(topic_name(n, settings.topic_prefix) for n in ("skills", "models")))
    await kafka.start(consumer, settings)
    try:
        seen = []
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            seen += [decode(r.value).body for r in records]
        return seen
    finally:
        await consumer.stop()


async def test_a_started_learner_rebuilds_from_the_log_and_publishes_what_it_knows(settings, tmp_path):
    log = outcome_log()
    await kafka.ensure_topics(settings)
    await publish_all(settings, log)
    expected = LearnerFold()
    for event in log:
        expected.apply(event.body)

    with serving("learner", settings, tmp_path):
        seen: list = []

        async def everything_published():
            seen.extend(await published(settings))
            skills = {(e.agent_id, e.capability): e for e in seen if isinstance(e, SkillEstimated)}
            return len(skills) == 2 and any(isinstance(e, ModelPublished) for e in seen) and skills

        skills = await wait_for(everything_published, timeout=60, what="the learner's estimates")

    for estimate in expected.snapshot():
        if isinstance(estimate, SkillEstimated):
            got = skills[(estimate.agent_id, estimate.capability)]
            assert (got.successes, got.attempts, got.proficiency) == (
                estimate.successes,
                estimate.attempts,
                estimate.proficiency,
            )
    assert skills[("agent-1", "python")].proficiency > skills[("agent-2", "python")].proficiency
