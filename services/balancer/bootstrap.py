"""Wires the balancer to the real Kafka and metrics registry, and runs it."""

from __future__ import annotations

from datetime import timedelta

import faust

from services.balancer.app import INPUT_TOPICS, SERVICE, create_app, reader_group
from services.balancer.history import ForwarderProgress, KafkaInboxHistory, ensure_balancer_topics, inbox_topic
from services.balancer.logic import Limits
from services.batches import consumer_opener, producer_opener
from services.faust_worker import processor_site, run_worker
from services.identity.gate import IdentityGate
from services.identity.signing import decision_signer
from services.metrics import ProcessorMetrics
from services.settings import Settings


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_attempts=settings.balancer.max_attempts,
        start_timeout=timedelta(seconds=settings.balancer.start_timeout_s),
        completion_timeout=timedelta(seconds=settings.balancer.completion_timeout_s),
        top_k=settings.balancer.top_k,
    )


def bootstrap(settings: Settings, *, metrics: ProcessorMetrics | None = None) -> faust.App:
    site = processor_site(settings, settings.balancer_app, settings.balancer.data_dir)
    # The session timeout is how long the inbox waits, after its owner dies, for another copy.
    session_ms = round(settings.balancer.session_timeout_s * 1000)
    return create_app(
        site=site,
        inbox_topic=inbox_topic(settings),
        history=KafkaInboxHistory(settings),
        limits=limits_from(settings),
        tick_interval_s=settings.balancer.tick_interval_s,
        snapshot_every=settings.balancer.snapshot_every,
        metrics=metrics or ProcessorMetrics(SERVICE),
        open_consumer=consumer_opener(
            settings, session_timeout_ms=session_ms, heartbeat_interval_ms=max(100, session_ms // 4)
        ),
        commit_interval_s=settings.batch_commit_interval_ms / 1000,
        open_producer=producer_opener(settings),
        forwarder_progress=ForwarderProgress(settings, reader_group(settings.balancer_app, "forwarder"), INPUT_TOPICS),
        identity=IdentityGate(settings),
        signer=decision_signer(settings),
    )


def serve(settings: Settings) -> int:
    return run_worker(
        settings,
        SERVICE,
        lambda metrics: bootstrap(settings, metrics=metrics),
        started=f"{settings.balancer_app}: {limits_from(settings)}",
        prepare=(ensure_balancer_topics,),
    )
