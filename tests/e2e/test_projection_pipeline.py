"""The projector against the real broker and database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench.demo.feed import scripted_feed
from events.topics import EVENT_TOPICS
from projections.handlers import ops_for
from projections.memory_view import InMemoryView
from projections.ops import Position
from projections.postgres_view import dump
from services import kafka
from services.deadletter.reinject import read_parked, replay_parked
from services.projector.catchup import events_projected
from services.replay import replay
from tests import factories as f
from tests.e2e.helpers import (
    drop_schema,
    fetch,
    publish_all,
    publish_raw,
    running_projector,
    wait_for,
    wait_until_projected,
)
from tests.signing import agent_key, enrolments

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
async def clean_schema(settings):
    await kafka.ensure_topics(settings)
    yield
    await drop_schema(settings, settings.db_schema)


async def test_an_event_from_an_external_client_appears_in_the_read_model(settings):
    # What a client in any language sends: the schema's example message, as plain bytes.
    message = orjson.loads((ROOT / "schemas" / "AgentRegistered.schema.json").read_bytes())["examples"][0]
    value = orjson.dumps(message)
    # Signed by the signing rule with the agent's enrolled key, where identities are verified.
    signer = await agent_key(settings, message["body"]["agent_id"])
    async with running_projector(settings):
        await publish_raw(settings, "agents", message["key"].encode(), value, headers=signer and signer.headers(value))
        rows = await wait_for(lambda: fetch(settings, "SELECT * FROM agents"), what="agent row")

    assert rows[0]["agent_id"] == message["body"]["agent_id"]
    assert rows[0]["display_name"] == message["body"]["display_name"]


async def test_a_duplicate_delivery_changes_nothing(settings):
    events = f.lifecycle("task-1") + [f.registered()]
    async with running_projector(settings) as projector:
        await publish_all(settings, events)
        await wait_until_projected(settings)
        before = await fetch(settings, "SELECT * FROM tasks ORDER BY task_id")

        # Kafka redelivers after a crash before its offsets were committed: same records again.
        records = await _read_all_records(settings)
        assert await projector.handle(records) == 0

        # A producer retry publishes the same event a second time, at a new offset.
        await publish_all(settings, events)
        await wait_until_projected(settings)

    assert await fetch(settings, "SELECT * FROM tasks ORDER BY task_id") == before
    assert len(await fetch(settings, "SELECT * FROM routing_decisions")) == 1
    assert len(await fetch(settings, "SELECT * FROM task_assignments")) == 1


async def test_a_poison_message_is_dead_lettered_and_the_next_event_still_projected(settings):
    async with running_projector(settings) as projector:
        await publish_raw(settings, "tasks", b"task-x", b"{not json")
        await publish_raw(settings, "tasks", b"task-y", orjson.dumps({"event_type": "TaskVanished", "version": 1}))
        await publish_all(settings, [f.submitted("task-ok")])
        await wait_for(lambda: fetch(settings, "SELECT * FROM tasks WHERE task_id = 'task-ok'"), what="good event")
        counted = projector.metrics.registry.get_sample_value(
            "orchestrator_dead_letters_total",
            {"service": "projector", "topic": settings.topic("tasks"), "error": "MalformedEvent"},
        )

    assert counted == 1
    parked = await read_parked(settings)
    assert sorted(p.error_class for p in parked) == ["MalformedEvent", "UnknownEventType"]
    poison = next(p for p in parked if p.error_class == "MalformedEvent")
    assert (poison.origin_topic, poison.value, poison.key, poison.attempt) == (
        settings.topic("tasks"),
        b"{not json",
        b"task-x",
        1,
    )
    assert poison.origin_offset >= 0 and poison.processor == "projector"


async def test_a_re_injected_message_fails_again_with_a_higher_attempt_count(settings):
    async with running_projector(settings):
        await publish_raw(settings, "tasks", b"task-x", b"{not json")
        await wait_for(lambda: read_parked(settings), what="dead letter")
        [first] = await replay_parked(settings)
        parked = await wait_for(lambda: _at_least(read_parked(settings), 2), what="second dead letter")
        [second] = await replay_parked(settings)  # only what was not re-injected before

    assert sorted(p.attempt for p in parked) == [1, 2]
    assert (first.attempt, second.attempt) == (1, 2)


async def test_the_cli_publishes_a_validated_event_that_reaches_the_read_model(settings):
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ORCHESTRATOR_TOPIC_PREFIX": settings.topic_prefix,
    }
    body = '{"task_id": "cli-1", "requirements": [{"name": "python"}], "submitter": "me"}'
    async with running_projector(settings):
        result = subprocess.run(
            [sys.executable, "-m", "services.cli", "publish", "--type", "TaskSubmitted", "--producer", "operator-7"],
            input=body,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        rows = await wait_for(
            lambda: fetch(settings, "SELECT * FROM tasks WHERE task_id = 'cli-1'"), what="the published task"
        )

    assert "published TaskSubmitted" in result.stdout
    assert (rows[0]["status"], rows[0]["submitter"]) == ("submitted", "me")


async def _at_least(coro, n):
    items = await coro
    return items if len(items) >= n else None


async def test_kill_9_mid_stream_then_restart_leaves_exact_read_models(settings):
    events = list(scripted_feed(agents=6, tasks=3000, seed=3))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "ORCHESTRATOR_TOPIC_PREFIX": settings.topic_prefix,
        "ORCHESTRATOR_DB_SCHEMA": settings.db_schema,
        "PROJECTOR_BATCH_SIZE": "100",
    }
    command = [sys.executable, "-m", "services.cli", "serve", "projector"]
    await publish_all(settings, events)

    first = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        await wait_for(lambda: _at_least_projected(settings, 1), what="the projector to be mid-stream")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    partial = (await fetch(settings, "SELECT count(*) AS n FROM tasks"))[0]["n"]

    second = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        await wait_until_projected(settings, timeout=120)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0

    assert partial < 3000, "the projector was killed mid-stream"
    reference = await _reference_rows(settings, events)
    for table in ("tasks", "task_assignments", "routing_decisions", "agents"):
        live = await fetch(settings, f"SELECT * FROM {table}")
        assert _canonical(live) == _canonical(reference.rows(table)), table


async def _at_least_projected(settings, n: int) -> bool:
    return await events_projected(settings) >= n


async def _reference_rows(settings, events) -> InMemoryView:
    """The same events through the in-memory view: what the tables must hold."""
    view = InMemoryView()
    await view.apply([(Position("ref", 0, i), ops_for(e)) for i, e in enumerate(events)])
    return view


def _canonical(rows) -> list[bytes]:
    # The in-memory view has no row for a column nothing wrote; PostgreSQL has NULL.
    return sorted(
        orjson.dumps({k: v for k, v in r.items() if v is not None}, option=orjson.OPT_SORT_KEYS) for r in rows
    )


async def test_replay_equals_live_and_swaps_in_atomically(settings):
    events = list(scripted_feed(agents=5, tasks=300, seed=5))
    async with running_projector(settings):
        await publish_all(settings, events)
        await wait_until_projected(settings)
        live = await _dump(settings, settings.db_schema)

        copy = await replay(settings, into=f"{settings.db_schema}_copy")
        assert copy.events == len(events) + enrolments(settings) and not copy.swapped
        assert await _dump(settings, copy.schema) == live
        await drop_schema(settings, copy.schema)

        report = await replay(settings)
        assert report.swapped
        assert await _dump(settings, settings.db_schema) == live

        # The live projector carries on in the swapped-in schema.
        await publish_all(settings, [f.submitted("after-swap")])
        await wait_for(
            lambda: fetch(settings, "SELECT 1 FROM tasks WHERE task_id = 'after-swap'"),
            what="an event projected after the swap",
        )


async def test_replay_until_builds_a_point_in_time_copy(settings):
    early = f.lifecycle("task-early", t=0)
    late = [f.submitted("task-late", t=3600)]
    await publish_all(settings, early + late)
    schema = f"{settings.db_schema}_pit"
    try:
        report = await replay(settings, until=f.at(60), into=schema)
        tasks = await fetch(settings, "SELECT task_id, status FROM tasks", schema=schema)
    finally:
        await drop_schema(settings, schema)

    assert report.events == len(early) + len(late) + enrolments(settings)
    assert tasks == [{"task_id": "task-early", "status": "completed"}]


async def _dump(settings, schema: str):
    import psycopg

    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        return await dump(conn, schema)


async def _read_all_records(settings):
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    try:
        ends = await kafka.end_offsets(settings, EVENT_TOPICS)
        consumer.assign([tp for tp, end in ends.items() if end])
        records = []
        while sum(1 for r in records) < sum(ends.values()):
            fetched = await consumer.getmany(timeout_ms=1000)
            records += [r for rs in fetched.values() for r in rs]
        return records
    finally:
        await consumer.stop()
