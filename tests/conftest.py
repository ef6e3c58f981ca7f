"""Where the real Kafka and PostgreSQL for integration and end-to-end tests come from.

1. KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL set: those endpoints, nothing started (with
   `make test SECURE=1` these are the secure profile's, with the admin's KAFKA_SASL_* and CA).
2. Otherwise, Docker reachable and not ORCHESTRATOR_SECURE=1: testcontainers starts both.
3. Otherwise: the project's local stack (`infra/stack.sh up`, idempotent), the secure profile
   under ORCHESTRATOR_SECURE=1, with its IDENTITY_MODE (verify).
A stack that cannot be had is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
import warnings
from pathlib import Path

import pytest

from services import kafka
from services.settings import Settings
from tests.signing import with_orchestrator_key

ROOT = Path(__file__).resolve().parent.parent


def _docker_reachable() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


def _secure() -> bool:
    return os.environ.get("ORCHESTRATOR_SECURE", "0") in ("1", "true", "yes")


def _local_stack_env() -> dict[str, str]:
    # infra/stack.sh reads ORCHESTRATOR_SECURE itself: `env` then prints the admin's credentials too.
    subprocess.run(["bash", str(ROOT / "infra" / "stack.sh"), "up"], check=True, cwd=ROOT)
    out = subprocess.run(
        ["bash", str(ROOT / "infra" / "stack.sh"), "env"], check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout
    env = dict(re.findall(r"export (\w+)=(\S+)", out))
    # Tests that start processes pass them os.environ plus the endpoints: the credentials go there.
    os.environ.update(
        {
            name: value
            for name, value in env.items()
            if name.startswith(("KAFKA_SECURITY_", "KAFKA_SASL_", "KAFKA_SSL_")) or name == "IDENTITY_MODE"
        }
    )
    return env


@pytest.fixture(scope="session")
def stack_env():
    names = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
    if all(os.environ.get(n) for n in names):
        yield {n: os.environ[n] for n in names}
        return
    if not _secure() and _docker_reachable():
        from tests.containers import kafka_container, postgres_container

        with kafka_container() as kafka, postgres_container() as pg:
            yield {"KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server(), "DATABASE_URL": pg.get_connection_url()}
        return
    yield _local_stack_env()


@pytest.fixture
def settings(stack_env, tmp_path_factory) -> Settings:
    """Settings on the real stack with a topic prefix and schema of this test's own; where identities
    are verified (the secure profile), with a key enrolled for the orchestrator's decisions."""
    tag = uuid.uuid4().hex[:10]
    own = Settings.from_env(
        {**os.environ, **stack_env},
        topic_prefix=f"test-{tag}",
        db_schema=f"test_{tag}",
        projector_batch_timeout_ms="100",
    )
    own = asyncio.run(with_orchestrator_key(own, tmp_path_factory.mktemp("keys")))
    yield own
    delete_topics(own)


def delete_topics(settings: Settings) -> None:
    """A test's topics go with it: a broker left with the thousands of partitions a whole run
    creates holds a file handle per segment and dies at the process's open-file limit."""
    try:
        asyncio.run(asyncio.wait_for(kafka.delete_topics(settings), 30))
    except Exception as error:  # noqa: BLE001 - the test's verdict stands; a leftover topic is only a warning
        warnings.warn(f"could not delete the topics of {settings.topic_prefix}: {error!r}")
