"""How far the projector is behind the log, and waiting until it has caught up."""

from __future__ import annotations

import asyncio
import time

import psycopg
from psycopg import sql

from events.topics import EVENT_TOPICS
from services import kafka
from services.settings import Settings


async def events_in_log(settings: Settings) -> int:
    return sum((await kafka.end_offsets(settings, EVENT_TOPICS)).values())


async def events_projected(settings: Settings, schema: str | None = None) -> int:
    """Events covered by the stored positions (offset + 1 summed over partitions)."""
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        try:
            cur = await conn.execute(
                sql.SQL('SELECT coalesce(sum("offset" + 1), 0) FROM {}.projection_positions').format(
                    sql.Identifier(schema or settings.db_schema)
                )
            )
        except psycopg.errors.UndefinedTable:
            return 0
        return int((await cur.fetchone())[0])


async def wait_until_caught_up(settings: Settings, timeout: float = 60.0) -> int:
    """Wait until every event now in the log is projected; return how many that is."""
    target = await events_in_log(settings)
    deadline = time.monotonic() + timeout
    while (done := await events_projected(settings)) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"projector at {done} of {target} events after {timeout}s")
        await asyncio.sleep(0.1)
    return target
