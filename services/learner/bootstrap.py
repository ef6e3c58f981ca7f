"""Wires the learner to the real Kafka and metrics registry, and runs it."""

from __future__ import annotations

import faust

from services.faust_worker import processor_site, run_worker
from services.learner.app import SERVICE, create_app
from services.learner.follower import LearnerFollower
from services.learner.marks import KafkaMarks, ensure_learner_topics
from services.learner.state import LearnerFold
from services.metrics import ProcessorMetrics
from services.settings import Settings


def bootstrap(settings: Settings, *, metrics: ProcessorMetrics | None = None) -> faust.App:
    metrics = metrics or ProcessorMetrics(SERVICE)
    site = processor_site(settings, settings.learner_app, settings.learner.data_dir)
    view = LearnerFold(publish_every=settings.learner.publish_every)
    follower = LearnerFollower(settings, view, metrics, SERVICE, marks=KafkaMarks(settings))
    return create_app(
        site=site,
        follower=follower,
        metrics=metrics,
    )


def serve(settings: Settings) -> int:
    return run_worker(
        settings,
        SERVICE,
        lambda metrics: bootstrap(settings, metrics=metrics),
        started=f"{settings.learner_app}: a model every {settings.learner.publish_every} outcomes",
        prepare=(ensure_learner_topics,),
    )
