"""Prometheus metrics of a service: one object, built from a registry, injected."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ProcessorMetrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("service", "topic")
        self.events_in = Counter("orchestrator_events_in_total", "Events consumed", labels,
                                 registry=self.registry)
        self.events_applied = Counter("orchestrator_events_applied_total",
                                      "Events whose effect was committed", labels, registry=self.registry)
        self.dead_letters = Counter("orchestrator_dead_letters_total", "Records sent to the dead-letter topic",
                                    (*labels, "error"), registry=self.registry)
        self.batch_seconds = Histogram("orchestrator_batch_seconds", "Time to process one batch",
                                       ("service",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.lag = Gauge("orchestrator_consumer_lag", "Records behind the end of the partition",
                         (*labels, "partition"), registry=self.registry)
        self.service = service

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)
