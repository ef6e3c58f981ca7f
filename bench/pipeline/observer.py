"""What the benchmark sees on the log: submissions, first assignments, completions, sizes.

Reads the raw records with orjson alone (no validation: the processors do that), so that
watching the pipeline costs little next to what it watches. Routing latency is the time
from a task's submission (`occurred_at` of its `TaskSubmitted`) to the moment its first
`TaskAssigned` was handed to Kafka (that record's timestamp: one clock on one machine),
counted for tasks submitted inside the measurement window.

It is also split into hops, for the tasks whose `TaskRouted` is seen too:
- route: submission -> the router's `TaskRouted` handed to Kafka;
- forward: -> the balancer's copy of it into its inbox (the assignment's `occurred_at`,
  which the balancer takes from the inbox record, so a replay decides at the same time);
- decide: -> the assignment handed to Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import orjson

from bench.histogram import Histogram

HOPS = ("route", "forward", "decide")
# Where routing latency ends. Results from before it was recorded ended at the balancer's inbox
# copy, which left out the balancer's own hop; they are not compared with later ones.
LATENCY_ENDS = "assignment handed to Kafka"
LATENCY_ENDS_BEFORE = "balancer inbox copy"


def _ms(start: float, end: float) -> float:
    return max(0.0, (end - start) * 1000)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Observer:
    window: tuple[float, float] = (float("inf"), float("inf"))  # epoch seconds, [start, end)
    latency_ms: Histogram = field(default_factory=Histogram)
    hops_ms: dict[str, Histogram] = field(default_factory=lambda: {hop: Histogram() for hop in HOPS})
    # task id -> the times seen so far of "submitted", "routed", "copied", "assigned" (epoch seconds);
    # topics are read in no set order, so each may come first.
    stamps: dict[str, dict[str, float]] = field(default_factory=dict)
    submitted_total: int = 0
    finished_total: int = 0
    completed_total: int = 0
    completed_in_window: int = 0
    records: int = 0
    record_bytes: int = 0

    def start_window(self, start: float, end: float) -> None:
        """Count from now on only what happens in [start, end): completions, latency and hops."""
        self.window, self.completed_in_window = (start, end), 0
        self.latency_ms = Histogram()
        self.hops_ms = {hop: Histogram() for hop in HOPS}

    def take(self, value: bytes, timestamp_ms: int | None = None) -> None:
        """One record's value, and its Kafka timestamp (when the producer handed it over)."""
        self.records += 1
        self.record_bytes += len(value)
        try:
            event = orjson.loads(value)
            kind, body, at = event["event_type"], event["body"], _epoch(event["occurred_at"])
        except (ValueError, KeyError, TypeError):
            return  # not ours to judge; the processors dead-letter it
        handed_over = timestamp_ms / 1000 if timestamp_ms is not None else at
        if kind == "TaskSubmitted":
            self.submitted_total += 1
            self._stamp(body["task_id"], submitted=at)
        elif kind == "TaskRouted":
            self._stamp(body["task_id"], routed=handed_over)
        elif kind == "TaskAssigned" and body.get("attempt") == 1:
            self._stamp(body["task_id"], copied=at, assigned=handed_over)
        elif kind in ("TaskCompleted", "TaskFailed"):
            self.finished_total += 1
            if kind == "TaskCompleted":
                self.completed_total += 1
                self.completed_in_window += self.window[0] <= at < self.window[1]

    def _stamp(self, task_id: str, **times: float) -> None:
        stamps = self.stamps.setdefault(task_id, {})
        for name, value in times.items():
            stamps.setdefault(name, value)  # the first routing and assignment count, not a retry's
        if "submitted" not in stamps or "assigned" not in stamps:
            return
        counted = self.window[0] <= stamps["submitted"] < self.window[1]
        if "recorded" not in stamps:
            stamps["recorded"] = 1.0
            if counted:
                self.latency_ms.record(_ms(stamps["submitted"], stamps["assigned"]))
        if "routed" in stamps:
            if counted:
                for hop, start, end in zip(HOPS, ("submitted", "routed", "copied"), ("routed", "copied", "assigned")):
                    self.hops_ms[hop].record(_ms(stamps[start], stamps[end]))
            del self.stamps[task_id]

    @property
    def in_flight(self) -> int:
        return self.submitted_total - self.finished_total

    @property
    def mean_record_bytes(self) -> int:
        return round(self.record_bytes / self.records) if self.records else 0
