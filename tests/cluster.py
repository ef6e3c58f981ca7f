"""A three-broker cluster of a test's own (`infra/stack.sh ... --brokers 3 --kafka-only`): its own
directory and ports, so that it runs beside the suite's stack and disturbs nothing else."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
from pathlib import Path

from tests.conftest import ROOT

STACK = ROOT / "infra" / "stack.sh"
CLUSTER = ["--brokers", "3", "--kafka-only"]


def free_base_port() -> int:
    """A base port for the cluster: brokers on base+1..3, controllers on base+11..13, all free
    and below the kernel's ephemeral range (see bench.pipeline.stages.free_port)."""
    for _ in range(200):
        base = random.randrange(20000, 32000, 20)
        try:
            for port in (base + 1, base + 2, base + 3, base + 11, base + 12, base + 13):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of ports between 20000 and 32000")


class Cluster:
    """`infra/stack.sh ... --brokers 3` on a directory and ports of the test's own."""

    def __init__(self, directory: Path) -> None:
        self.base = free_base_port()
        self.bootstrap = ",".join(f"127.0.0.1:{self.base + n}" for n in (1, 2, 3))
        # Plaintext, and without the suite's endpoints, which the stack would take for an external broker.
        inherited = {
            name: value
            for name, value in os.environ.items()
            if name not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "ORCHESTRATOR_SECURE")
            and not name.startswith(("KAFKA_SECURITY_", "KAFKA_SASL_", "KAFKA_SSL_"))
        }
        self.env = {**inherited, "STACK_CLUSTER_DIR": str(directory), "STACK_CLUSTER_PORT": str(self.base)}

    def run(self, *args: str, timeout: float = 150) -> str:
        done = subprocess.run(
            ["bash", str(STACK), *args, *CLUSTER],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"infra/stack.sh {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    async def start_broker(self, node: int) -> str:
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(STACK),
            "start-broker",
            str(node),
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, f"infra/stack.sh start-broker {node} failed:\n{out.decode()}"
        return out.decode()
