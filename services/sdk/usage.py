"""CPU and memory of this process, for heartbeats.

The standard library is enough: `resource` gives CPU time everywhere, /proc/self/statm the
resident set on Linux; elsewhere the peak resident set stands in. psutil would add a compiled
dependency for two numbers.
"""

from __future__ import annotations

import os
import resource
import sys
import time

MIB = 1024 * 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def resident_mb() -> float | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class ProcessUsage:
    """CPU percent since the previous sample (100 = one core busy) and resident memory in MiB."""

    def __init__(self, clock=time.monotonic, cpu=cpu_seconds, memory=resident_mb) -> None:
        self._clock, self._cpu, self._memory = clock, cpu, memory
        self._last = (clock(), cpu())

    def sample(self) -> tuple[float | None, float | None]:
        now, used = self._clock(), self._cpu()
        (then, used_then), self._last = self._last, (now, used)
        elapsed = now - then
        cpu_percent = max(0.0, (used - used_then) / elapsed * 100) if elapsed > 0 else None
        return cpu_percent, self._memory()
