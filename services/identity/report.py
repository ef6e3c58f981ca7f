"""Reporting a rejected record once: parked on the dead-letter topic with the reason, a
`SecurityViolationDetected` on the `security` topic, and the violations counter.

Only the projector reports. Every other processor applies the same gate and just skips what
it refuses: they all judge the same log the same way, and the projector is the one consumer
that reads every agent-speaking topic exactly once, in one group, with its position kept.
A record reported again after a crash carries the same event id (derived from its origin),
so the read model still holds it once.
"""

from __future__ import annotations

import logging
from uuid import NAMESPACE_URL, uuid5

from events.codec import encode, type_header
from events.envelope import make_event
from services.identity.verify import Inbound, Violation, violation_event

log = logging.getLogger("orchestrator.identity")


class IdentityViolation(Exception):
    """The record does not come from the agent it speaks for; the text names the kind and why."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(f"{violation.kind}: {violation.reason}")
        self.violation = violation


class ViolationReporter:
    def __init__(self, *, gate, dead_letters, producer, security_topic: str, processor: str, metrics) -> None:
        self.gate = gate
        self.dead_letters = dead_letters
        self.producer = producer
        self.security_topic = security_topic
        self.processor = processor
        self.metrics = metrics

    async def screen(self, records) -> tuple[list, list]:
        """(accepted, refused) records; the refused ones are already reported."""
        accepted, refused = await self.gate.split(records)
        for record, violation in refused:
            await self.report(record, violation)
        return accepted, [record for record, _ in refused]

    async def report(self, record, violation: Violation) -> None:
        inbound = Inbound.of(record)
        log.warning(
            "security violation %s at %s[%d]@%d: %s",
            violation.kind,
            inbound.topic,
            inbound.partition,
            inbound.offset,
            violation.reason,
        )
        await self.dead_letters.park(record, IdentityViolation(violation))
        event = make_event(
            violation_event(violation, inbound, self.processor),
            producer=self.processor,
            event_id=str(
                uuid5(
                    NAMESPACE_URL,
                    f"{self.security_topic}/violation/{inbound.topic}/{inbound.partition}/{inbound.offset}",
                )
            ),
        )
        await self.producer.send_and_wait(
            self.security_topic, encode(event), key=event.key.encode(), headers=[type_header(event)]
        )
        self.metrics.security_violations.labels(self.processor, violation.kind).inc()
        self.metrics.dead_letters.labels(self.processor, inbound.topic, IdentityViolation.__name__).inc()
