"""Per-stage consumer lag, read from each processor's Prometheus endpoint."""
from __future__ import annotations

import asyncio
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def lag_by_service(exposition: str) -> dict[str, float]:
    """Summed `orchestrator_consumer_lag` per service, from a /metrics page."""
    lag: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name == "orchestrator_consumer_lag":
            for sample in family.samples:
                service = sample.labels.get("service", "?")
                lag[service] = lag.get(service, 0.0) + sample.value
    return lag


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return response.read().decode()


async def lag_of(ports: dict[str, int]) -> dict[str, float]:
    """The lag each processor reports now; a processor not (yet) answering reads as absent."""
    lags = {}
    for name, port in ports.items():
        try:
            page = await asyncio.to_thread(_scrape, port)
        except OSError:
            continue
        lags[name] = sum(lag_by_service(page).values())
    return lags
