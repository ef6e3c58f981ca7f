"""`orchestrator privacy erase`: crypto-shredding of a data subject, announced on the privacy topic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import get_args
from uuid import NAMESPACE_URL, uuid4, uuid5

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from events.envelope import Envelope, make_event
from events.privacy import ErasureReason, SubjectErased
from services import kafka
from services.privacy.keystore import KeyStore, Tombstone
from services.settings import Settings

REASONS: tuple[str, ...] = get_args(ErasureReason)


class ErasuresUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class ErasureReport:
    erasure_id: str
    destroyed: tuple[str, ...]  # key ids destroyed by this call
    announced: tuple[Envelope, ...]  # SubjectErased published by this call, earlier unannounced ones included
    not_scrubbed: str | None  # why a deleted key's bytes may still be in the key table's files; None: they are not


def check_erasure_request(erased_by: str, reason: str) -> None:
    # Checked before any key is destroyed: an erasure must never be done and then fail to be recorded.
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
    if not 1 <= len(erased_by) <= 256:
        raise ValueError("the operator erasing (erased_by) needs 1 to 256 characters")


def erasure_event(stone: Tombstone, producer: str) -> Envelope:
    # The event id follows from the key, so announcing again after a crash sends the same event.
    return make_event(
        SubjectErased(
            key_id=stone.key_id,
            erasure_id=stone.erasure_id,
            erased_at=stone.erased_at,
            erased_by=stone.erased_by,
            reason=stone.reason,
        ),
        producer=producer,
        event_id=str(uuid5(NAMESPACE_URL, f"subject-erased:{stone.key_id}")),
        correlation_id=stone.erasure_id,
    )


async def erase_subject(
    settings: Settings, subject_id: str, *, erased_by: str, reason: str, now: datetime | None = None
) -> ErasureReport:
    """Destroy the subject's keys, then publish one SubjectErased per key not yet announced.

    Keys go first: an erasure that cannot be announced now is still an erasure, and its
    tombstone is announced by the next call.
    """
    check_erasure_request(erased_by, reason)
    erasure_id = f"erasure-{uuid4().hex[:16]}"
    now = now or datetime.now(timezone.utc)
    async with await KeyStore.connect(settings) as store:
        destroyed, not_scrubbed = await store.destroy_subject(
            subject_id, erasure_id=erasure_id, erased_by=erased_by, reason=reason, now=now
        )
        events = [erasure_event(stone, settings.producer_name) for stone in await store.unannounced()]
        if events:
            await _publish(settings, events)
            await store.mark_announced([e.body.key_id for e in events], datetime.now(timezone.utc))
    return ErasureReport(erasure_id, tuple(s.key_id for s in destroyed), tuple(events), not_scrubbed)


async def _publish(settings: Settings, events: list[Envelope]) -> None:
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        for event in events:
            await kafka.publish(producer, settings, event)
    finally:
        await producer.stop()


async def erasures(settings: Settings) -> list[dict]:
    """Every erasure the read models know of, oldest first: key ids, when, by whom, why; no personal data."""
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    sql.SQL(
                        "SELECT erasure_id, key_id, erased_at, erased_by, reason, recorded_at FROM {}.erasures "
                        "ORDER BY erased_at, erasure_id, key_id"
                    ).format(sql.Identifier(settings.db_schema))
                )
                return await cur.fetchall()
    except psycopg.errors.UndefinedTable:
        raise ErasuresUnavailable(
            f"no erasures table in schema {settings.db_schema}: start the projector once "
            "(`orchestrator serve projector`) so it applies its migrations"
        ) from None
    except psycopg.OperationalError as error:
        raise ErasuresUnavailable(f"cannot reach PostgreSQL at DATABASE_URL ({error})") from error
