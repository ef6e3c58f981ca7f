"""CPU and memory of processes, read from /proc (Linux), without a dependency."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name (field 2) may hold spaces; what follows its ")" is space-separated.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return None


def pids_named(fragment: str) -> list[int]:
    """Processes whose command line contains `fragment` (to find the broker and the database)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if fragment.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@dataclass
class Watched:
    pids: list[int]
    cpu_start: float = 0.0
    rss_max: int = 0


@dataclass
class ProcessWatch:
    """CPU share and peak memory of named groups of processes over a window."""

    groups: dict[str, list[int]]
    watched: dict[str, Watched] = field(default_factory=dict)
    started: float = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.watched = {name: Watched(pids, cpu_start=self._cpu(pids)) for name, pids in self.groups.items()}
        self.sample()

    def sample(self) -> None:
        for w in self.watched.values():
            w.rss_max = max(w.rss_max, sum(rss_bytes(p) or 0 for p in w.pids))

    def usage(self) -> dict[str, dict[str, float]]:
        self.sample()
        elapsed = max(time.monotonic() - self.started, 1e-9)
        usage = {}
        for name, w in self.watched.items():
            cpu = self._cpu(w.pids) - w.cpu_start
            usage[name] = {
                "cpu_percent": round(100 * cpu / elapsed, 1),
                "cpu_seconds": round(cpu, 2),
                "rss_mib_max": round(w.rss_max / 2**20, 1),
            }
        return usage

    @staticmethod
    def _cpu(pids: list[int]) -> float:
        return sum(cpu_seconds(p) or 0.0 for p in pids)
