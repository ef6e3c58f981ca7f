"""Crypto-shredding on the real stack: after an erasure, no plaintext of the subject anywhere.

Searched byte for byte: the broker's segment files of this test's topics, a pg_dump of the
read models and of the key store, the database's own files, and the read models rebuilt by
replay. Each search is shown able to find something first (a positive control), so a
search that finds nothing means the bytes are not there, not that it looked in the wrong place.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import psycopg
import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from events.envelope import make_event
from events.tasks import TaskAssigned, TaskSubmitted
from events.values import CapabilityRequirement
from services import kafka
from services.privacy import KeyStore, KeyUnavailable, seal_payload
from services.privacy.erasure import erasures
from services.replay import replay
from services.sdk.task import Task
from tests.e2e.helpers import drop_schema, fetch, publish_all, running_projector, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


@pytest.fixture
async def private(settings):
    settings = settings.replace(keystore_schema=f"{settings.db_schema}_keys")
    await kafka.ensure_topics(settings)
    yield settings
    await drop_schema(settings, settings.db_schema)
    await drop_schema(settings, settings.keystore.schema)


def cli_result(settings, extra_env: dict, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "ORCHESTRATOR_TOPIC_PREFIX": settings.topic_prefix,
        "ORCHESTRATOR_DB_SCHEMA": settings.db_schema,
        "KEYSTORE_SCHEMA": settings.keystore.schema,
        "ORCHESTRATOR_PRODUCER": "operator:e2e",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def cli(settings, *args: str) -> str:
    done = cli_result(settings, {}, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def broker_log_dirs(settings) -> list[Path]:
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings, "the Kafka admin API")
    try:
        node = (await admin.describe_cluster())["brokers"][0]["node_id"]
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, str(node))])
        entries = {e[0]: e[1] for *_, entries in response.resources for e in entries}
    finally:
        await admin.close()
    return [Path(d) for d in (entries.get("log.dirs") or entries["log.dir"]).split(",")]


def topic_bytes(log_dirs: list[Path], prefix: str) -> bytes:
    """Every byte of every segment of this test's topics, as the broker keeps them on disk."""
    files = [f for d in log_dirs for topic_dir in d.glob(f"{prefix}.*") for f in topic_dir.iterdir() if f.is_file()]
    assert files, f"no segment files for topics {prefix}.* under {log_dirs}"
    return b"".join(f.read_bytes() for f in files)


def pg_dump(settings, *schemas: str) -> bytes:
    flags = [f"--schema={s}" for s in schemas]
    return subprocess.run(
        [str(PG_BIN / "pg_dump"), *flags, settings.database_url], check=True, capture_output=True, timeout=120
    ).stdout


async def found_in_database_files(settings, *needles: bytes) -> set[bytes]:
    """Which needles the database's own heap and index files hold, after a checkpoint wrote them out."""
    [row] = await fetch(
        settings,
        "SELECT current_setting('data_directory') AS dir, "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) AS oid",
    )
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await conn.execute("CHECKPOINT")
    found = set()
    for file in (Path(row["dir"]) / "base" / str(row["oid"])).iterdir():  # one file at a time: it may be large
        if file.is_file():
            content = file.read_bytes()
            found |= {needle for needle in needles if needle in content}
    return found


def submission(task_id: str, payload: dict) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=task_id, requirements=(CapabilityRequirement(name="python"),), submitter="client:e2e", payload=payload
    )


async def reveal(settings, task_id: str, field: str, keystore: KeyStore):
    """What an agent assigned the task sees: the payload the balancer copies from the submission."""
    [row] = await fetch(settings, "SELECT payload FROM tasks WHERE task_id = %s", (task_id,))

    async def no_hand_off(body):
        raise AssertionError("no hand-off expected")

    assigned = TaskAssigned(task_id=task_id, agent_id="agent-1", attempt=1, capability="python", payload=row["payload"])
    return await Task.of(assigned, "event-1", no_hand_off).reveal(field, keystore)


async def test_an_erased_subject_leaves_no_plaintext_in_topics_read_models_dumps_or_a_rebuild(private):
    settings, tag = private, uuid.uuid4().hex[:12]
    subject_1, subject_2 = f"subject-one-{tag}", f"subject-two-{tag}"
    email_1, email_2 = f"first-{tag}@example.com", f"second-{tag}@example.com"
    phone_1 = f"+33-1-{tag}"
    payload_file = ROOT / ".local" / f"payload-{tag}.json"
    payload_file.parent.mkdir(exist_ok=True)
    payload_file.write_bytes(orjson.dumps({"prompt": "Send the invoice", "email": email_1, "phone": phone_1}))

    # Subject 1 through the command line, subject 2 through the client API.
    try:
        out = cli(
            settings,
            "task",
            "submit",
            "--task-id",
            f"task-1-{tag}",
            "--require",
            "python:0.5",
            "--payload",
            str(payload_file),
            "--sensitive",
            "email",
            "--sensitive",
            "phone",
            "--subject",
            subject_1,
        )
    finally:
        payload_file.unlink()
    assert "sealed: email, phone" in out
    async with await KeyStore.connect(settings) as keystore:
        sealed_2 = await seal_payload(
            {"prompt": "Call back", "email": email_2},
            task_id=f"task-2-{tag}",
            sensitive={"email": subject_2},
            keystore=keystore,
        )
        await publish_all(settings, [make_event(submission(f"task-2-{tag}", sealed_2), producer="client:e2e")])
        key_1 = await keystore.key_for_subject(subject_1)
        key_2 = await keystore.key_for_subject(subject_2)

    async with running_projector(settings):
        both = "SELECT count(*) FROM tasks WHERE task_id IN (%s, %s) HAVING count(*) = 2"
        await wait_for(lambda: fetch(settings, both, (f"task-1-{tag}", f"task-2-{tag}")), what="both tasks projected")
        [projected_1] = await fetch(settings, "SELECT payload FROM tasks WHERE task_id = %s", (f"task-1-{tag}",))
        ciphertext_1 = projected_1["payload"]["email"]["ct"].encode()
        async with await KeyStore.connect(settings) as keystore:
            assert await reveal(settings, f"task-1-{tag}", "email", keystore) == email_1
            assert await reveal(settings, f"task-1-{tag}", "phone", keystore) == phone_1
            assert await reveal(settings, f"task-2-{tag}", "email", keystore) == email_2

        # Plaintext never reached Kafka, nor did the subject ids: only ciphertext and key ids.
        log_dirs = await broker_log_dirs(settings)
        on_disk = topic_bytes(log_dirs, settings.topic_prefix)
        assert ciphertext_1 in on_disk and key_1.key_id.encode() in on_disk
        for secret in (email_1, phone_1, subject_1, email_2, subject_2):
            assert secret.encode() not in on_disk, f"{secret} reached Kafka"

        # In a thread: the projector keeps its group session alive meanwhile.
        out = await asyncio.to_thread(cli, settings, "privacy", "erase", subject_1, "--reason", "subject-request")
        assert key_1.key_id in out and subject_1 not in out
        await wait_for(lambda: fetch(settings, "SELECT * FROM erasures"), what="the erasure projected")

    # The subject's key is gone from the key store; the other subject's is not.
    async with await KeyStore.connect(settings) as keystore:
        with pytest.raises(KeyUnavailable, match="destroyed when its data subject was erased"):
            await reveal(settings, f"task-1-{tag}", "email", keystore)
        assert await reveal(settings, f"task-2-{tag}", "email", keystore) == email_2

    # Topics still hold the ciphertext, which nothing can open any more, and the erasure by key id only.
    on_disk = topic_bytes(log_dirs, settings.topic_prefix)
    assert ciphertext_1 in on_disk
    for secret in (email_1, phone_1, subject_1):
        assert secret.encode() not in on_disk

    # pg_dump of the read models and the key store: ciphertext yes, plaintext and key no.
    dump = pg_dump(settings, settings.db_schema, settings.keystore.schema)
    assert ciphertext_1 in dump and key_2.key.hex().encode() in dump
    for secret in (email_1, phone_1, subject_1, key_1.key.hex()):
        assert secret.encode() not in dump, f"{secret} survives in pg_dump"

    # Nor in the database's files: the deleted row's key bytes are not left in a dead tuple.
    assert await found_in_database_files(settings, key_1.key, key_2.key) == {key_2.key}

    # A rebuild by replay brings back ciphertext and the erasure, never plaintext.
    report = await replay(settings, progress_out=open(os.devnull, "w"))
    assert report.swapped and report.rejected == 0
    rebuilt = pg_dump(settings, settings.db_schema)
    assert ciphertext_1 in rebuilt
    for secret in (email_1, phone_1, subject_1):
        assert secret.encode() not in rebuilt
    async with await KeyStore.connect(settings) as keystore:
        assert await reveal(settings, f"task-2-{tag}", "email", keystore) == email_2
        with pytest.raises(KeyUnavailable):
            await reveal(settings, f"task-1-{tag}", "email", keystore)

    # The erasure is on record, by key id, without personal data.
    listed = orjson.loads(cli(settings, "privacy", "erasures", "--json"))
    assert [(e["key_id"], e["reason"], e["erased_by"]) for e in listed] == [
        (key_1.key_id, "subject-request", "operator:e2e")
    ]
    assert [e["key_id"] for e in await erasures(settings)] == [key_1.key_id]
    assert subject_1.encode() not in orjson.dumps(listed)


async def test_erasing_a_subject_twice_destroys_nothing_more_and_announces_nothing_again(private):
    settings = private
    async with await KeyStore.connect(settings) as keystore:
        await keystore.key_for_subject("subject-x")
    first = cli(settings, "privacy", "erase", "subject-x")
    second = cli(settings, "privacy", "erase", "subject-x")
    assert "destroyed 1 key(s)" in first and "announced SubjectErased" in first
    assert "nothing to destroy" in second and "announced" not in second


@pytest.fixture
async def keystore_role(private):
    """A login role that may use the key store's tables but does not own them."""
    settings, role = private, f"ks_user_{uuid.uuid4().hex[:8]}"
    async with await KeyStore.connect(settings):
        pass  # creates the tables, owned by the admin
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        ident, schema = psycopg.sql.Identifier(role), psycopg.sql.Identifier(settings.keystore.schema)
        await conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'ks'").format(ident))
        await conn.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, ident))
        await conn.execute(
            psycopg.sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
                schema, ident
            )
        )
    host = settings.database_url.rsplit("@", 1)[1]
    yield settings.replace(keystore_database_url=f"postgresql://{role}:ks@{host}")
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await conn.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(psycopg.sql.Identifier(role)))
        await conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))


async def test_an_erasure_by_a_role_that_cannot_rewrite_the_key_table_says_so_and_the_owner_finishes_it(keystore_role):
    limited = keystore_role
    async with await KeyStore.connect(limited) as keystore:
        key = await keystore.key_for_subject("subject-y")
    env_url = {"KEYSTORE_DATABASE_URL": limited.keystore.database_url}

    failed = await asyncio.to_thread(cli_result, limited, env_url, "privacy", "erase", "subject-y")
    assert failed.returncode == 1 and "does not own" in failed.stderr and key.key_id in failed.stdout
    async with await KeyStore.connect(limited) as keystore:
        with pytest.raises(KeyUnavailable, match="destroyed"):
            await keystore.keys([key.key_id])
    # Deleted but not rewritten: the key's bytes are still in a dead row, as the command warned.
    assert await found_in_database_files(limited, key.key) == {key.key}

    owner = await asyncio.to_thread(cli_result, limited, {}, "privacy", "erase", "subject-y")
    assert owner.returncode == 0, owner.stderr
    assert await found_in_database_files(limited, key.key) == set()
