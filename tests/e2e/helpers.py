"""Plumbing for end-to-end tests: publishing, waiting on conditions, reading tables."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from events.codec import encode
from events.topics import topic_for_event, topic_name
from services import kafka
from services.projector.bootstrap import projector_running
from services.projector.catchup import wait_until_caught_up
from services.settings import Settings, as_environ
from tests.signing import keyring


async def publish_all(settings, events) -> None:
    """Publish in order, each assignment on the broker before anything after it is sent: a real
    agent answers only an assignment it has read, and the identity gate judges an answer to an
    attempt by what was on the broker when the answer was written. Where identities are verified,
    what speaks for an agent or for the orchestrator is signed with a key enrolled for it."""
    events = list(events)
    ring = keyring(settings)
    await ring.enroll(*ring.unknown(events))
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        sent = []
        for e in events:
            value = encode(e)
            sent.append(
                await producer.send(
                    topic_name(topic_for_event(e.event_type), settings.topic_prefix),
                    value,
                    key=e.key.encode(),
                    headers=ring.headers(e, value) if ring.verifying else None,
                )
            )
            if e.event_type == "TaskAssigned":
                await sent[-1]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def publish_raw(settings, logical_topic: str, key: bytes | None, value: bytes, headers=None) -> None:
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        await producer.send_and_wait(topic_name(logical_topic, settings.topic_prefix), value, key=key, headers=headers)
    finally:
        await producer.stop()


async def wait_for(condition, timeout: float = 60.0, what: str = "condition", every: float = 0.1):
    """Poll a condition (plain or async) every `every` seconds until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


async def fetch(settings, query: str, params=(), schema: str | None = None) -> list[dict]:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema or settings.db_schema)))
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()


async def projected(settings, query: str, params=()) -> list[dict]:
    """`fetch` for polling a projector started as its own process: until it has created the read
    models (a niced projector may take a while), there is nothing yet, not an error."""
    try:
        return await fetch(settings, query, params)
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return []


@contextlib.asynccontextmanager
async def running_projector(settings):
    stop = asyncio.Event()
    async with projector_running(settings) as projector:
        task = asyncio.create_task(projector.run(stop))
        try:
            yield projector
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def wait_until_projected(settings, timeout: float = 60.0) -> int:
    return await wait_until_caught_up(settings, timeout)


async def drop_schema(settings, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a child process of these settings gets: every variable of Settings, and `extra`."""
    return {**os.environ, **as_environ(settings), **extra}
