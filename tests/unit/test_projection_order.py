"""Topics are read in no fixed order relative to each other; the rows must not care."""

import random

import pytest

from bench.demo.feed import scripted_feed
from events.topics import topic_for_event
from projections.handlers import ops_for
from projections.memory_view import InMemoryView
from projections.ops import Position

TABLES = (
    "agents",
    "agent_capabilities",
    "tasks",
    "task_assignments",
    "routing_decisions",
    "agent_health_changes",
    "agent_heartbeats_latest",
)


async def project(events) -> InMemoryView:
    view = InMemoryView()
    await view.apply([(Position("log", 0, i), ops_for(e)) for i, e in enumerate(events)])
    return view


def interleave_topics(events, rng: random.Random):
    """Keep each topic's own order (as Kafka does per partition) but mix topics at random."""
    queues: dict[str, list] = {}
    for event in events:
        queues.setdefault(topic_for_event(event.event_type).name, []).append(event)
    mixed = []
    while queues:
        name = rng.choice(sorted(queues))
        mixed.append(queues[name].pop(0))
        if not queues[name]:
            del queues[name]
    return mixed


@pytest.mark.parametrize("seed", range(5))
async def test_any_interleaving_of_topics_gives_the_same_rows(seed):
    events = list(scripted_feed(agents=6, tasks=300, seed=seed))
    in_order = await project(events)
    interleaved = await project(interleave_topics(events, random.Random(seed)))

    for table in TABLES:
        assert interleaved.rows(table) == in_order.rows(table), table
        assert in_order.rows(table), f"the feed should fill {table}"
