"""What the benchmark sees on the log: submissions, first assignments, completions, sizes.

Reads the raw records with orjson alone (no validation: the processors do that), so that
watching the pipeline costs little next to what it watches. Routing latency is the time
from a task's `TaskSubmitted` to its first `TaskAssigned`, both as stamped by their
producers (`occurred_at`, one clock on one machine), counted for tasks submitted inside
the measurement window.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import orjson

from bench.histogram import Histogram


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Observer:
    window: tuple[float, float] = (float("inf"), float("inf"))  # epoch seconds, [start, end)
    latency_ms: Histogram = field(default_factory=Histogram)
    submitted: dict[str, float] = field(default_factory=dict)  # task id -> submitted at, until assigned
    assigned_early: dict[str, float] = field(default_factory=dict)  # read before its submission
    submitted_total: int = 0
    finished_total: int = 0
    completed_total: int = 0
    completed_in_window: int = 0
    records: int = 0
    record_bytes: int = 0

    def take(self, value: bytes) -> None:
        self.records += 1
        self.record_bytes += len(value)
        try:
            event = orjson.loads(value)
            kind, body, at = event["event_type"], event["body"], _epoch(event["occurred_at"])
        except (ValueError, KeyError, TypeError):
            return  # not ours to judge; the processors dead-letter it
        if kind == "TaskSubmitted":
            self.submitted_total += 1
            task_id = body["task_id"]
            if task_id in self.assigned_early:
                self._latency(at, self.assigned_early.pop(task_id))
            else:
                self.submitted[task_id] = at
        elif kind == "TaskAssigned" and body.get("attempt") == 1:
            task_id = body["task_id"]
            if task_id in self.submitted:
                self._latency(self.submitted.pop(task_id), at)
            else:
                self.assigned_early[task_id] = at
        elif kind in ("TaskCompleted", "TaskFailed"):
            self.finished_total += 1
            if kind == "TaskCompleted":
                self.completed_total += 1
                self.completed_in_window += self.window[0] <= at < self.window[1]

    def _latency(self, submitted_at: float, assigned_at: float) -> None:
        if self.window[0] <= submitted_at < self.window[1]:
            self.latency_ms.record(max(0.0, (assigned_at - submitted_at) * 1000))

    @property
    def in_flight(self) -> int:
        return self.submitted_total - self.finished_total

    @property
    def mean_record_bytes(self) -> int:
        return round(self.record_bytes / self.records) if self.records else 0
