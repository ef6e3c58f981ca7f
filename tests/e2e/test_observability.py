"""The processors' /metrics, scraped by a real Prometheus server and read back through its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

from bench.pipeline.stages import free_port
from tests.e2e.helpers import publish_all, wait_for
from tests.e2e.test_routing import agent, serving, task

pytestmark = pytest.mark.e2e

PROCESSORS = ("projector", "router", "balancer")
EXPECTED = {
    "projector": (
        "orchestrator_events_in_total",
        "orchestrator_events_applied_total",
        "orchestrator_batch_seconds_bucket",
        "orchestrator_consumer_lag",
    ),
    "router": (
        "orchestrator_events_in_total",
        "orchestrator_events_out_total",
        "orchestrator_handler_seconds_bucket",
        "orchestrator_routing_decision_seconds_bucket",
        "orchestrator_consumer_lag",
        "orchestrator_healthy_agents",
        "orchestrator_capability_capacity",
    ),
    "balancer": (
        "orchestrator_events_in_total",
        "orchestrator_events_out_total",
        "orchestrator_in_flight",
        "orchestrator_consumer_lag",
    ),
}


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        message = "prometheus is missing (make install, or apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextlib.contextmanager
def prometheus(tmp_path, targets: dict[str, int]):
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "orchestrator",
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{p}"], "labels": {"processor": name}}
                            for name, p in targets.items()
                        ],
                    }
                ],
            }
        )
    )
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
        print("--- prometheus log (tail) ---\n" + log_path.read_text(errors="replace")[-3000:])


def query(base_url: str, promql: str) -> list[dict]:
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.load(response)
    except OSError:  # not listening yet
        return []
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


async def samples(base_url: str, promql: str) -> list[dict]:
    return await asyncio.to_thread(query, base_url, promql)


async def test_prometheus_scrapes_every_processor_and_sees_their_metrics(settings, tmp_path):
    ports = {name: free_port() for name in PROCESSORS}
    with contextlib.ExitStack() as running:
        for name, port in ports.items():
            running.enter_context(serving(name, settings.replace(metrics_port=str(port)), tmp_path))
        base_url = running.enter_context(prometheus(tmp_path, ports))

        async def all_up():
            up = await samples(base_url, "up == 1")
            return {s["metric"]["processor"] for s in up} == set(PROCESSORS)

        await wait_for(all_up, timeout=60, what="every processor scraped and up")

        await publish_all(settings, [agent("py-1", python=0.9), task("t-1")])
        for processor, names in EXPECTED.items():
            for name in names:
                promql = f'{name}{{processor="{processor}"}}'
                await wait_for(lambda: samples(base_url, promql), timeout=60, what=f"samples of {promql}")

        [healthy] = await samples(base_url, 'orchestrator_healthy_agents{processor="router", capability="python"}')
        assert healthy["value"][1] == "1"
        # routed, or queued when the task reached the router before the agent did
        [decided] = await samples(base_url, "sum(orchestrator_routing_decision_seconds_count)")
        assert float(decided["value"][1]) >= 1
