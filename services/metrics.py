"""Prometheus metrics of a service: one object, built from a registry and a clock, injected.

Every family is labelled by `service`, so one dashboard reads all processors; a labelled
family a service never touches exports no samples. The learner sets `learner_accuracy`.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Gauges computed from a whole state are refreshed at most this often while events stream in.
STATE_REFRESH_S = 0.5


class _Children:
    """A labelled family that looks each child up once. prometheus-client's `labels()` validates
    and locks on every call (about 4 us here), and processors call it several times per event."""

    def __init__(self, family) -> None:
        self._family = family
        self._children: dict[tuple[str, ...], object] = {}

    def labels(self, *values: str):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._family.labels(*values)
        return child

    def __getattr__(self, name: str):
        return getattr(self._family, name)


class ProcessorMetrics:
    def __init__(
        self, service: str, registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.service = service
        self.clock = clock
        labels = ("service", "topic")
        self.events_in = Counter("orchestrator_events_in_total", "Events consumed", labels, registry=self.registry)
        self.events_applied = Counter(
            "orchestrator_events_applied_total", "Events whose effect was committed", labels, registry=self.registry
        )
        self.events_out = Counter("orchestrator_events_out_total", "Events published", labels, registry=self.registry)
        self.dead_letters = Counter(
            "orchestrator_dead_letters_total",
            "Records sent to the dead-letter topic",
            (*labels, "error"),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "orchestrator_batch_seconds",
            "Time to process one batch",
            ("service",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "orchestrator_handler_seconds",
            "Time to handle one consumed event",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.routing_decision_seconds = Histogram(
            "orchestrator_routing_decision_seconds",
            "From a task's submission to the router's decision about it",
            ("service", "decision"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "orchestrator_consumer_lag",
            "Records behind the end of the partition",
            (*labels, "partition"),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "orchestrator_in_flight", "Attempts an agent holds", ("service", "agent"), registry=self.registry
        )
        self.queue_length = Gauge(
            "orchestrator_queue_length",
            "Tasks waiting for room, per capability",
            ("service", "capability"),
            registry=self.registry,
        )
        self.healthy_agents = Gauge(
            "orchestrator_healthy_agents",
            "Agents the router would route to (registered, not unhealthy), per capability",
            ("service", "capability"),
            registry=self.registry,
        )
        self.capability_capacity = Gauge(
            "orchestrator_capability_capacity",
            "Summed capacity of the agents counted in orchestrator_healthy_agents",
            ("service", "capability"),
            registry=self.registry,
        )
        self.learner_accuracy = Gauge(
            "orchestrator_learner_accuracy",
            "Accuracy of the learner's current model on recent outcomes (0..1)",
            ("service",),
            registry=self.registry,
        )
        self.security_violations = Counter(
            "orchestrator_security_violations_total",
            "Records rejected as not coming from the agent they speak for, counted once, by the processor that "
            "reports them",
            ("service", "kind"),
            registry=self.registry,
        )
        self.audit_chain_seq = Gauge(
            "orchestrator_audit_chain_seq",
            "Seq of the newest row of the audit chain",
            ("service",),
            registry=self.registry,
        )
        self.audit_checkpoint_time = Gauge(
            "orchestrator_audit_checkpoint_timestamp_seconds",
            "Unix time of the newest signed checkpoint of the audit chain",
            ("service",),
            registry=self.registry,
        )
        self._known: dict[str, set[str]] = {}
        self._refreshed: dict[str, float] = {}
        for name, family in list(vars(self).items()):
            if isinstance(family, MetricWrapperBase):
                setattr(self, name, _Children(family))

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def consumed(self, topic: str, partition: int, offset: int, highwater: int | None) -> None:
        """Lag after handling the record at `offset`, from the high-water mark the consumer last fetched."""
        if highwater is not None:
            self.lag.labels(self.service, topic, str(partition)).set(max(0, highwater - offset - 1))

    def consumed_message(self, consumer, message) -> None:
        """The same, for a Faust message and the app's consumer."""
        self.consumed(message.topic, message.partition, message.offset, highwater_of(consumer, message.tp))

    def consumed_batch(self, consumer, fetched: dict) -> None:
        """The same, for each partition of a batch a consumer fetched."""
        for tp, records in fetched.items():
            if records:
                self.consumed(tp.topic, tp.partition, records[-1].offset, highwater_of(consumer, tp))

    def due(self, what: str, every_s: float = STATE_REFRESH_S) -> bool:
        now = self.clock()
        if now - self._refreshed.get(what, float("-inf")) < every_s:
            return False
        self._refreshed[what] = now
        return True

    def balancer_state(self, slots: Mapping, tasks: Iterable) -> None:
        """In flight per agent and queue length per capability, from the balancer's state."""
        self._levels(self.in_flight, {agent_id: len(slot.in_flight) for agent_id, slot in slots.items()})
        self._levels(self.queue_length, Tally(task.capability for task in tasks if task.queued_at))

    def routable_agents(self, agents: Iterable) -> None:
        """Healthy agents and their capacity per capability, from the router's registry."""
        healthy, capacity = Tally(), Tally()
        for agent in agents:
            for capability in agent.capabilities:
                healthy[capability] += 0
                capacity[capability] += 0
                if agent.routable:
                    healthy[capability] += 1
                    capacity[capability] += agent.capacity
        self._levels(self.healthy_agents, healthy)
        self._levels(self.capability_capacity, capacity)

    def _levels(self, gauge: Gauge, values: Mapping[str, float]) -> None:
        # A label seen before and now absent reads 0, not its last value: alerts on "none left" need it.
        known = self._known.setdefault(gauge._name, set())
        known.update(values)
        for label in known:
            gauge.labels(self.service, label).set(values.get(label, 0))


def highwater_of(consumer, tp) -> int | None:
    """The partition's high-water mark as last fetched; None once a rebalance took the partition away
    (records fetched before it still arrive, and their lag is nobody's to report any more)."""
    try:
        return consumer.highwater(tp)
    except Exception:  # noqa: BLE001 - lag is best effort; aiokafka asserts on a partition not assigned
        return None
