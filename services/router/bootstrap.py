"""Wires the router to the real Kafka, clock and metrics registry, and runs it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import faust

from services.batches import consumer_opener, producer_opener
from services.faust_worker import processor_site, run_worker
from services.identity.gate import IdentityGate
from services.identity.signing import decision_signer
from services.metrics import ProcessorMetrics
from services.router.app import SERVICE, create_app
from services.router.follower import LogFollower
from services.router.logic import Weights
from services.router.policies import policy
from services.router.state import RouterFold
from services.router.waiting import ensure_router_topics, read_waiting, waiting_topic
from services.settings import Settings


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def weights_from(settings: Settings) -> Weights:
    return Weights(
        success=settings.router.weight_success,
        load=settings.router.weight_load,
        duration=settings.router.weight_duration,
        cost=settings.router.weight_cost,
        relationship=settings.router.weight_relationship,
        preference=settings.router.weight_preference,
        temperature=settings.router.temperature,
        top_k=settings.router.top_k,
        exploration=settings.router.exploration,
        sharpness=settings.router.thompson_sharpness,
    )


def bootstrap(
    settings: Settings, *, metrics: ProcessorMetrics | None = None, clock: Callable[[], datetime] = utc_now
) -> faust.App:
    metrics = metrics or ProcessorMetrics(SERVICE)
    site = processor_site(settings, settings.router_app, settings.router.data_dir)
    return create_app(
        site=site,
        follower=LogFollower(settings, RouterFold(), metrics, SERVICE),
        weights=weights_from(settings),
        policy=policy(settings.router.policy),
        seed=settings.router.seed,
        retry_interval_s=settings.router.retry_interval_s,
        metrics=metrics,
        clock=clock,
        waiting_topic=waiting_topic(settings),
        open_consumer=consumer_opener(settings),
        commit_interval_s=settings.batch_commit_interval_ms / 1000,
        open_producer=producer_opener(settings),
        read_waiting=lambda partitions: read_waiting(settings, partitions),
        signer=decision_signer(settings),
        identity=IdentityGate(settings),
    )


def serve(settings: Settings) -> int:
    return run_worker(
        settings,
        SERVICE,
        lambda metrics: bootstrap(settings, metrics=metrics),
        started=f"{settings.router_app}: {weights_from(settings)}",
        prepare=(ensure_router_topics,),
    )
