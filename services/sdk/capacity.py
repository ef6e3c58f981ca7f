"""How many tasks may run at once, overall and per capability."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

# Open assignments (queued or running) are named in the offset commit's metadata, which Kafka
# caps at 4 KiB by default; 256 relative offsets always fit.
MAX_OPEN = 256
MAX_CAPACITY = MAX_OPEN


def read_ahead_window(capacity: int) -> int:
    """Most assignments held at once: those running plus a few read ahead to start without delay."""
    return min(MAX_OPEN, 2 * capacity)


class Slots:
    def __init__(self, capacity: int, per_capability: Mapping[str, int] | None = None) -> None:
        self.capacity = capacity
        self.per_capability = dict(per_capability or {})
        self._running: Counter[str] = Counter()

    @property
    def in_flight(self) -> int:
        return sum(self._running.values())

    def running(self, capability: str) -> int:
        return self._running[capability]

    def free(self, capability: str) -> bool:
        limit = self.per_capability.get(capability)
        return self.in_flight < self.capacity and (limit is None or self._running[capability] < limit)

    def take(self, capability: str) -> None:
        if not self.free(capability):
            raise RuntimeError(f"no free slot for {capability}")
        self._running[capability] += 1

    def give_back(self, capability: str) -> None:
        if self._running[capability] <= 0:
            raise RuntimeError(f"no {capability} task is running")
        self._running[capability] -= 1
