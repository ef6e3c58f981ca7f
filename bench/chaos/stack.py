"""The infrastructure a chaos run breaks: the broker and PostgreSQL the project's stack started.

Faults are real signals to the real processes; the restart is `infra/stack.sh up`, which
starts whatever of the stack is not running.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psycopg

from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def secure() -> bool:
    return os.environ.get("ORCHESTRATOR_SECURE", "0") in ("1", "true", "yes")


def broker_pid() -> int:
    """The pid of the broker `infra/stack.sh up` started (its pid file), for this profile."""
    default = ROOT / ".local" / ("kafka-secure" if secure() else "kafka")
    pid_file = Path(os.environ.get("STACK_KAFKA_DIR", default)) / "kafka.pid"
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError) as error:
        raise RuntimeError(f"no broker started by infra/stack.sh ({pid_file}): {error}") from None


async def postgres_pid(settings: Settings) -> int:
    """The postmaster: the parent of the backend serving a connection (the server is on this machine)."""
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        backend = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
        # Read while the connection is open: the backend ends with it.
        return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def stack_up() -> None:
    """Start again whatever of the stack is down; waits until it answers."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "infra" / "stack.sh"),
        "up",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"infra/stack.sh up failed:\n{output.decode(errors='replace')[-2000:]}")


def signal_pid(pid: int, sig: signal.Signals) -> None:
    os.kill(pid, sig)
