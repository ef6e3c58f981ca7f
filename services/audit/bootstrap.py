"""Wires the audit projector to the real Kafka, PostgreSQL, checkpoint directory and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import psycopg

from events.topics import TOPICS, topic_name
from services import kafka
from services.audit import checkpoints
from services.audit.app import Auditor, Checkpointer
from services.audit.logic import newest_valid
from services.audit.store import AuditStore, ensure_schema
from services.metrics import ProcessorMetrics
from services.outages import closed, through_outages
from services.projector.bootstrap import DatabaseUnavailable
from services.settings import ConfigError, Settings
from services.shutdown import stop_on_signals

log = logging.getLogger("orchestrator.audit")
IDLE_CHECK_S = 1.0


def audited_topics(settings: Settings) -> list[str]:
    """Every topic of the catalog, the dead-letter topic included."""
    return [topic_name(spec, settings.topic_prefix) for spec in TOPICS]


async def open_store(settings: Settings) -> AuditStore:
    try:
        store = await AuditStore.connect(settings.audit_url, settings.audit.db_schema)
    except psycopg.OperationalError as error:
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at AUDIT_DATABASE_URL / DATABASE_URL ({error}); start the local stack "
            "with `make up` or point the variable at a database"
        ) from error
    if await ensure_schema(store.conn, settings.audit.db_schema):
        log.info("created the audit log in schema %s", settings.audit.db_schema)
    return store


def checkpointer_for(settings: Settings) -> Checkpointer:
    key_file = Path(settings.audit.signing_key_file)
    directory = Path(settings.audit.checkpoint_dir)
    try:
        key = checkpoints.load_or_create_signing_key(key_file)
        directory.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as error:
        raise ConfigError(f"AUDIT_SIGNING_KEY_FILE / AUDIT_CHECKPOINT_DIR: {error}") from error
    if not os.access(directory, os.W_OK):
        # Found now rather than at the first checkpoint, with rows already appended and unsigned.
        raise ConfigError(f"AUDIT_CHECKPOINT_DIR {directory} is not writable")
    checkpointer = Checkpointer(
        chain=settings.audit.db_schema,
        directory=directory,
        key=key,
        every_rows=settings.audit.checkpoint_every_rows,
        every_s=settings.audit.checkpoint_every_s,
    )
    found = checkpoints.read_all(directory, settings.audit.db_schema) if directory.exists() else []
    checkpointer.start_from(newest_valid(found, key.public_key()))
    return checkpointer


@contextlib.asynccontextmanager
async def auditor_running(
    settings: Settings,
    stop: asyncio.Event,
    metrics: ProcessorMetrics | None = None,
    connected: Callable[[], None] = lambda: None,
):
    """A started Auditor holding the chain's writer lock (None if `stop` came first); closed on exit.
    `connected` is called once the database answered, before the wait for the lock."""
    await kafka.ensure_topics(settings)
    store = await open_store(settings)
    connected()
    consumer = None
    try:
        if not await store.wait_for_lock(stop):
            yield None
            return
        head, position = await store.head()  # read under the lock: nobody appends behind our back
        # It appends a batch per AUDIT_BATCH_TIMEOUT_MS at most anyway: its fetches may wait as long.
        fetches = kafka.batch_fetches(settings, settings.audit.batch_timeout_ms)
        consumer = kafka.consumer(settings, group_id=settings.audit_group, **fetches)
        await kafka.start(consumer, settings)
        log.info("audit chain of schema %s resumes after seq %d", settings.audit.db_schema, head.seq)
        checkpointer = checkpointer_for(settings)
        if head.seq < checkpointer.signed_seq:
            log.error(
                "the audit log ends at seq %d but a signed checkpoint covers seq %d: rows were removed; "
                "`orchestrator audit verify` names where",
                head.seq,
                checkpointer.signed_seq,
            )
        yield Auditor(
            consumer=consumer,
            view=store,
            metrics=metrics or ProcessorMetrics("audit"),
            topics=audited_topics(settings),
            batch_size=settings.audit.batch_size,
            batch_timeout_ms=settings.audit.batch_timeout_ms,
            head=head,
            position=position,
            checkpointer=checkpointer,
        )
    finally:
        if consumer is not None:
            await closed(consumer.stop)
        await store.close()


async def run_until(auditor: Auditor, stop: asyncio.Event) -> None:
    """Consume until `stop`; checkpoints fall due by time even while nothing arrives."""

    async def tick():
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), IDLE_CHECK_S)
            auditor.idle()

    ticker = asyncio.create_task(tick())
    try:
        await auditor.run(stop)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    auditor.final_checkpoint()


async def serve(settings: Settings) -> None:
    metrics = ProcessorMetrics("audit")
    metrics.serve(settings.metrics_port)
    stop = stop_on_signals()

    async def run_once(running) -> None:
        async with auditor_running(settings, stop, metrics, connected=running) as auditor:
            if auditor is None:
                return
            log.info("audit consuming %s", ", ".join(auditor.topics))
            await run_until(auditor, stop)

    await through_outages(run_once, stop, log, "audit", settings.startup_wait_s)
    log.info("audit stopped cleanly")
