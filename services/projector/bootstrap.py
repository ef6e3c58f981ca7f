"""Wires the projector to the real Kafka, PostgreSQL and metrics registry."""

from __future__ import annotations

import contextlib
import logging

import psycopg

from events.topics import DEAD_LETTER, EVENT_TOPICS, topic_name
from projections.migrate import migrate
from projections.postgres_view import PostgresView
from services import kafka
from services.deadletter.park import DeadLetters
from services.identity.gate import IdentityGate
from services.identity.report import ViolationReporter
from services.metrics import ProcessorMetrics
from services.outages import closed, through_outages
from services.projector.app import Projector
from services.settings import Settings
from services.shutdown import stop_on_signals

log = logging.getLogger("orchestrator.projector")


class DatabaseUnavailable(RuntimeError):
    pass


async def open_view(settings: Settings, schema: str | None = None) -> PostgresView:
    schema = schema or settings.db_schema
    try:
        view = await PostgresView.connect(settings.database_url, schema)
    except psycopg.OperationalError as error:
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at DATABASE_URL ({error}); start the local stack with "
            "`make up` or point the variable at a database"
        ) from error
    applied = await migrate(view.conn, schema)
    if applied:
        log.info("applied migrations to schema %s: %s", schema, ", ".join(applied))
    return view


@contextlib.asynccontextmanager
async def projector_running(settings: Settings, metrics: ProcessorMetrics | None = None):
    """A started Projector with its resources; everything is closed on exit."""
    await kafka.ensure_topics(settings)
    view = await open_view(settings)
    producer = kafka.producer(settings)
    topics = [topic_name(spec, settings.topic_prefix) for spec in EVENT_TOPICS]
    # It writes a batch per PROJECTOR_BATCH_TIMEOUT_MS at most anyway: its fetches may wait as long.
    fetches = kafka.batch_fetches(settings, settings.batch_timeout_ms)
    consumer = kafka.consumer(settings, group_id=settings.group_id, **fetches)
    gate = IdentityGate(settings)
    try:
        await kafka.start(producer, settings)
        await kafka.start(consumer, settings)
        metrics = metrics or ProcessorMetrics("projector")
        dead_letters = DeadLetters(producer, topic_name(DEAD_LETTER, settings.topic_prefix), "projector")
        yield Projector(
            consumer=consumer,
            view=view,
            metrics=metrics,
            dead_letters=dead_letters,
            topics=topics,
            batch_size=settings.batch_size,
            batch_timeout_ms=settings.batch_timeout_ms,
            identity=ViolationReporter(
                gate=gate,
                dead_letters=dead_letters,
                producer=producer,
                security_topic=settings.topic("security"),
                processor="projector",
                metrics=metrics,
            ),
        )
    finally:
        await closed(gate.stop)
        await closed(consumer.stop)
        await closed(producer.stop)
        await view.close()


async def serve(settings: Settings) -> None:
    metrics = ProcessorMetrics("projector")
    metrics.serve(settings.metrics_port)
    stop = stop_on_signals()

    async def run_once(running) -> None:
        async with projector_running(settings, metrics) as projector:
            running()
            log.info("projector consuming %s", ", ".join(projector.topics))
            await projector.run(stop)

    await through_outages(run_once, stop, log, "projector", settings.startup_wait_s)
    log.info("projector stopped cleanly")
