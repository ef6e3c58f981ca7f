"""The infrastructure a chaos run breaks: the broker(s) and PostgreSQL the project's stack started.

Faults are real signals to the real processes, through `infra/stack.sh`: on the three-broker
cluster (`up --brokers 3`; KAFKA_BOOTSTRAP_SERVERS names three brokers) one broker at a time
is killed, paused and started again; on the single broker, the broker is the whole cluster.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psycopg

from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FLAGS = ("--brokers", "3", "--kafka-only")


def brokers(settings: Settings) -> int:
    """How many brokers the run's Kafka has: the cluster's three, or one."""
    return 3 if len(settings.kafka_bootstrap_servers.split(",")) >= 3 else 1


async def script(*args: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "infra" / "stack.sh"),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"infra/stack.sh {' '.join(args)} failed:\n{output.decode(errors='replace')[-2000:]}")
    return output.decode(errors="replace")


def _single_broker_pid() -> int:
    secure = os.environ.get("ORCHESTRATOR_SECURE", "0") in ("1", "true", "yes")
    default = ROOT / ".local" / ("kafka-secure" if secure else "kafka")
    pid_file = Path(os.environ.get("STACK_KAFKA_DIR", default)) / "kafka.pid"
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError) as error:
        raise RuntimeError(f"no broker started by infra/stack.sh ({pid_file}): {error}") from None


async def broker_pid(settings: Settings, node: int) -> int:
    if brokers(settings) == 1:
        return _single_broker_pid()
    return int((await script("broker-pid", str(node), *CLUSTER_FLAGS)).strip().splitlines()[-1])


async def kill_broker(settings: Settings, node: int) -> None:
    os.kill(await broker_pid(settings, node), signal.SIGKILL)


async def start_broker(settings: Settings, node: int) -> None:
    """Start a killed broker again; returns once it answers (on the cluster: is back in the ISR)."""
    if brokers(settings) == 1:
        await script("up")
    else:
        await script("start-broker", str(node), *CLUSTER_FLAGS)


async def postgres_pid(settings: Settings) -> int:
    """The postmaster: the parent of the backend serving a connection (the server is on this machine)."""
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        backend = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
        # Read while the connection is open: the backend ends with it.
        return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def start_postgres() -> None:
    """`infra/stack.sh up` for PostgreSQL; a cluster named in KAFKA_BOOTSTRAP_SERVERS is left out of it."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    await script("up", env=env)
