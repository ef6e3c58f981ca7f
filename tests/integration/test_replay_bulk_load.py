"""The bulk replay (folded in memory, loaded with COPY) equals the row-by-row replay, on the real stack.

The log holds every event type the projector handles, ties at one instant, redeliveries and
producer retries, records the decoder rejects, a record whose type header misdescribes it,
an outcome the identity gate refuses, and heartbeats already gone to retention.
"""

from __future__ import annotations

import asyncio
import os

import psycopg
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from bench.demo.feed import scripted_feed
from events.codec import EVENT_TYPE_HEADER, encode
from events.examples import example_event
from events.topics import EVENT_TOPICS, topic_for_event, topic_name
from projections import rollups
from projections.handlers import HANDLERS
from projections.postgres_view import dump
from services import kafka
from services.replay import replay
from tests import factories as f
from tests.e2e.helpers import drop_schema, publish_raw
from tests.signing import keyring

pytestmark = pytest.mark.integration


def varied_log() -> list:
    examples = [example_event(event_type) for event_type in sorted(HANDLERS)]  # all at one instant
    fleet = list(scripted_feed(agents=4, tasks=60, seed=3, start=f.at(0)))
    agent_story = [
        f.registered("agent-9", capabilities=(("python", 0.8), ("sql", 0.6)), share_experience=True, t=0),
        f.registered("agent-9", capabilities=(("go", 0.9),), t=5),  # replaces the capability set
        *f.lifecycle("task-b", "agent-9", t=1),
        f.handed_off("task-b", "agent-9", "agent-2", t=6),
        f.load_summarized("agent-9", t=7),
        f.deregistered("agent-9", t=8),
        f.submitted("task-c", t=9),
        f.assigned("task-c", "agent-9", t=9.5),
        f.failed("task-c", "agent-9", t=9.8),
    ]
    return examples + fleet + agent_story


async def publish(settings, events, *, with_type_header: bool) -> None:
    """In order, each assignment on the broker before what follows it (the identity gate judges
    an answer by what was on the broker when it was written)."""
    ring = keyring(settings)  # where identities are verified, signed for whom they speak
    await ring.enroll(*ring.unknown(events))
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        sent = []
        for event in events:
            value = encode(event)
            headers = ring.headers(event, value) if with_type_header else ring.signature(event, value)
            sent.append(
                await producer.send(
                    topic_name(topic_for_event(event.event_type), settings.topic_prefix),
                    value,
                    key=event.key.encode(),
                    headers=headers or None,
                )
            )
            if event.event_type == "TaskAssigned":
                await sent[-1]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def publish_misdescribed(settings, event, claimed_type: str) -> None:
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        await producer.send_and_wait(
            topic_name(topic_for_event(event.event_type), settings.topic_prefix),
            encode(event),
            key=event.key.encode(),
            headers=[(EVENT_TYPE_HEADER, claimed_type.encode())],
        )
    finally:
        await producer.stop()


async def expire_oldest_heartbeats(settings) -> None:
    """What retention does to the heartbeat topic: its oldest records are gone from the log."""
    topic = settings.topic("heartbeats")
    ends = await kafka.end_offsets(settings, [spec for spec in EVENT_TOPICS if spec.name == "heartbeats"])
    partition, end = max(((tp.partition, end) for tp, end in ends.items() if tp.topic == topic), key=lambda p: p[1])
    assert end > 1, "the log should hold heartbeats to expire"
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings)
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(before_offset=end // 2)})
    finally:
        await admin.close()


@pytest.fixture
async def log(settings):
    await kafka.ensure_topics(settings)
    events = varied_log()
    await publish(settings, events[:40], with_type_header=False)  # as clients without the header send
    await publish(settings, events[40:], with_type_header=True)
    await publish(settings, events[:10] + events[-6:], with_type_header=True)  # a producer's retries
    await publish(settings, [f.completed("task-b", "intruder", t=6.5)], with_type_header=True)  # refused
    await publish_misdescribed(settings, f.submitted("task-d", t=9.9), claimed_type="TaskStarted")
    await publish_raw(settings, "tasks", b"task-x", b"{not json")
    await publish_raw(settings, "tasks", b"task-y", b'{"event_type": "TaskVanished", "version": 1}')
    await expire_oldest_heartbeats(settings)
    yield events


async def both_ways(settings, **options):
    quiet = open(os.devnull, "w")
    bulk = await replay(settings, into=f"{settings.db_schema}_bulk", progress_out=quiet, **options)
    rows = await replay(settings, into=f"{settings.db_schema}_rows", progress_out=quiet, bulk=False, **options)
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            return (
                bulk,
                rows,
                await dump(conn, bulk.schema),
                await dump(conn, rows.schema),
                await _indexes(conn, bulk.schema),
                await _indexes(conn, rows.schema),
            )
    finally:
        for schema in (bulk.schema, rows.schema):
            await drop_schema(settings, schema)


async def _indexes(conn, schema: str) -> list[tuple[str, str]]:
    cur = await conn.execute(
        "SELECT indexname, replace(indexdef, %s, '') FROM pg_indexes WHERE schemaname = %s ORDER BY indexname",
        (f"{schema}.", schema),
    )
    return await cur.fetchall()


async def test_the_bulk_load_equals_the_row_by_row_replay(settings, log):
    assert set(HANDLERS) <= {event.event_type for event in log}, "every handled event type is in the log"

    bulk, rows, bulk_tables, row_tables, bulk_indexes, row_indexes = await both_ways(settings)

    assert (bulk.events, bulk.rejected) == (rows.events, rows.rejected)
    assert bulk.rejected == 4  # two undecodable records, the misdescribed one and the refused outcome
    assert bulk_tables == row_tables
    assert all(
        bulk_tables[table]
        for table in (
            "tasks",
            "task_assignments",
            "agents",
            "agent_capabilities",
            "skill_trajectory",
            "security_events",
            "erasures",
            "agent_heartbeats_latest",
            "projection_positions",
            # Kept batch by batch in one, computed from the rows in the other.
            *rollups.TABLES,
        )
    )
    assert bulk_indexes == row_indexes


async def test_a_point_in_time_bulk_load_equals_the_row_by_row_one(settings, log):
    bulk, rows, bulk_tables, row_tables, _, _ = await both_ways(settings, until=f.at(2))

    assert bulk_tables == row_tables
    statuses = {row[0]: row[1] for row in bulk_tables["tasks"]}
    assert statuses["task-b"] == "routed" and "task-c" not in statuses
    assert bulk_tables["projection_positions"], "later events still advance the positions"
