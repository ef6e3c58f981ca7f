"""Per-stage consumer lag, read from each processor's Prometheus endpoint."""

from __future__ import annotations

import asyncio
import random
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def summed_by_service(exposition: str, sample_name: str) -> dict[str, float]:
    """One metric of a /metrics page, summed over its other labels per service."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == sample_name:
                service = sample.labels.get("service", "?")
                sums[service] = sums.get(service, 0.0) + sample.value
    return sums


def lag_by_service(exposition: str) -> dict[str, float]:
    """Summed `orchestrator_consumer_lag` per service: records behind, over every partition."""
    return summed_by_service(exposition, "orchestrator_consumer_lag")


def delivered_by_service(exposition: str) -> dict[str, float]:
    """Records the broker handed to each service so far, those passed over unread included."""
    return summed_by_service(exposition, "orchestrator_events_in_total")


_HANDED_OUT: set[int] = set()  # never the same port twice to one process


def free_port() -> int:
    """A free port for a local server, below the kernel's ephemeral range.

    A port the kernel picks (bind to 0) is an ephemeral one, which any outgoing connection,
    such as a Kafka client's, may be handed between this check and the server's bind: the
    server then fails with "Address already in use". A client retrying against a stopped
    broker could even be handed the broker's own port and connect to itself.
    """
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    lowest_ephemeral = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    for _ in range(500):
        port = random.randint(20000, lowest_ephemeral - 1)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port between 20000 and {lowest_ephemeral - 1}")


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return response.read().decode()


async def _each(ports: dict[str, int], read) -> dict[str, float]:
    figures = {}
    for name, port in ports.items():
        try:
            page = await asyncio.to_thread(_scrape, port)
        except OSError:
            continue
        figures[name] = sum(read(page).values())
    return figures


async def lag_of(ports: dict[str, int]) -> dict[str, float]:
    """The lag each processor reports now; a processor not (yet) answering reads as absent."""
    return await _each(ports, lag_by_service)


async def delivered_to(ports: dict[str, int]) -> dict[str, float]:
    """The records each processor has been handed since it started."""
    return await _each(ports, delivered_by_service)
