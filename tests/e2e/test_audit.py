"""The audit projector on the real broker and database: the chain, tampering in SQL, crashes, standbys."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg import sql

from bench.demo.feed import scripted_feed
from events.topics import TOPICS
from services import kafka
from services.audit.bootstrap import auditor_running, run_until
from services.audit.chain import Head, extend
from services.audit.store import WRITER_LOCK, read_rows
from services.audit.verify import verify
from services.deadletter.park import dead_letter_headers
from tests.e2e.helpers import drop_schema, env_of, publish_all, publish_raw, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def audit_settings(settings, tmp_path):
    return settings.replace(
        audit_db_schema=f"audit_{settings.db_schema}",
        audit_batch_timeout_ms="100",
        audit_checkpoint_dir=str(tmp_path / "checkpoints"),
        audit_checkpoint_every_rows="500",
        audit_signing_key_file=str(tmp_path / "keys" / "signing-key.pem"),
    )


@pytest.fixture(autouse=True)
async def clean(audit_settings):
    await kafka.ensure_topics(audit_settings)
    yield
    await drop_schema(audit_settings, audit_settings.audit.db_schema)


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env_of(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def records_in_log(settings) -> int:
    return sum((await kafka.end_offsets(settings, TOPICS)).values())


async def query(settings, statement: str, params=()) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.audit.db_schema)))
        cur = await conn.execute(statement, params)
        return await cur.fetchall() if cur.description else []


async def rows_audited(settings) -> int:
    try:
        return (await query(settings, "SELECT count(*) FROM audit_log"))[0][0]
    except psycopg.errors.UndefinedTable:
        return 0


async def until_all_audited(settings, timeout: float = 120.0) -> int:
    total = await records_in_log(settings)
    await wait_for(
        lambda: _at_least(rows_audited(settings), total), timeout=timeout, what=f"{total} records in the audit log"
    )
    return total


async def _at_least(count, n: int) -> bool:
    return await count >= n


async def _asked_for_the_lock_since(conn, since) -> bool:
    cur = await conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
        "AND query LIKE '%%pg_try_advisory_lock%%' AND query_start > %s",
        (since,),
    )
    return (await cur.fetchone())[0] > 0


async def park_some_dead_letters(settings) -> None:
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        for offset in range(3):
            origin = type(
                "Consumed", (), {"topic": settings.topic("tasks"), "partition": 0, "offset": offset, "headers": ()}
            )()
            await producer.send_and_wait(
                settings.topic("dead-letter"),
                b"{not json",
                key=b"task-x",
                headers=dead_letter_headers(origin, ValueError("bad input"), "projector"),
            )
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running_auditor(settings):
    stop = asyncio.Event()
    async with auditor_running(settings, stop) as auditor:
        task = asyncio.create_task(run_until(auditor, stop))
        try:
            yield auditor
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def position_at(settings, seq: int) -> str:
    [(topic, partition, offset)] = await query(
        settings, 'SELECT topic, partition, "offset" FROM audit_log WHERE seq = %s', (seq,)
    )
    return f"{topic}[{partition}]@{offset}"


async def test_every_record_of_every_topic_is_chained_and_each_tampering_is_named_at_its_row(audit_settings):
    s = audit_settings
    await publish_all(s, list(scripted_feed(agents=4, tasks=150, seed=11)))
    await publish_raw(s, "tasks", b"task-poison", b"{not json")
    await park_some_dead_letters(s)
    async with running_auditor(s) as auditor:
        total = await until_all_audited(s)
    sample = auditor.metrics.registry.get_sample_value
    assert sample("orchestrator_audit_chain_seq", {"service": "audit"}) == total
    assert sample("orchestrator_audit_checkpoint_timestamp_seconds", {"service": "audit"}) > 0

    by_topic = dict(await query(s, "SELECT topic, count(*) FROM audit_log GROUP BY topic"))
    assert by_topic[s.topic("dead-letter")] == 3
    assert (await query(s, "SELECT value FROM audit_log WHERE key = 'task-poison'"))[0][0] == b"{not json"
    ok = cli(s, "audit", "verify", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = orjson.loads(ok.stdout)
    assert (report["ok"], report["rows_verified"]) == (True, total)
    assert report["checkpoints"] >= total // 500

    # Modification of one value.
    [(original,)] = await query(s, "SELECT value FROM audit_log WHERE seq = 40")
    await query(s, "UPDATE audit_log SET value = %s WHERE seq = 40", (b'{"tampered": true}',))
    await expect_first_bad(s, 40, "altered", through_cli=True)
    await query(s, "UPDATE audit_log SET value = %s WHERE seq = 40", (original,))

    # Deletion of one row.
    [deleted] = await query(s, "DELETE FROM audit_log WHERE seq = 77 RETURNING *")
    first = await expect_first_bad(s, 77, "missing")
    assert f"found seq 78 ({await position_at(s, 78)}) next" in first["detail"]
    await query(s, f"INSERT INTO audit_log VALUES ({', '.join(['%s'] * len(deleted))})", deleted)

    # Two rows swapped.
    await swap(s, 120, 121)
    await expect_first_bad(s, 120, "broken_link")
    await swap(s, 120, 121)

    # A row inserted in the middle, the later ones renumbered.
    await shift_from(s, 200, +1)
    await query(
        s,
        "INSERT INTO audit_log SELECT 200, topic, partition, -1, kafka_timestamp_ms, key, %s, headers, "
        "hash, hash FROM audit_log WHERE seq = 199",
        (b'{"forged": true}',),
    )  # linked to seq 199
    await expect_first_bad(s, 200, "altered")
    await query(s, "DELETE FROM audit_log WHERE seq = 200")
    await shift_from(s, 201, -1)

    # The tail cut off: only the newest signed checkpoint can tell.
    tail = await query(s, "DELETE FROM audit_log WHERE seq > %s RETURNING *", (total - 5,))
    await expect_first_bad(s, total - 4, "truncated")
    for row in tail:
        await query(s, f"INSERT INTO audit_log VALUES ({', '.join(['%s'] * len(row))})", row)

    assert cli(s, "audit", "verify").returncode == 0
    compliance = cli(s, "compliance", "report", "--json")
    assert compliance.returncode == 0, compliance.stderr
    audit_section = orjson.loads(compliance.stdout)["sections"]["audit"]
    assert audit_section["status"] == "ok" and f"{total} rows" in audit_section["summary"]


async def expect_first_bad(settings, seq: int, kind: str, *, through_cli: bool = False) -> dict:
    """`audit verify` must fail and name `seq` (and, where the row is still there, its position).

    In process by default; `through_cli` also checks the command's exit status and output."""
    if through_cli:
        result = cli(settings, "audit", "verify", "--json")
        assert result.returncode == 1, result.stdout
        first = orjson.loads(result.stdout)["first_bad"]
    else:
        first = (await verify(settings)).as_json()["first_bad"]
    assert (first["seq"], first["kind"]) == (seq, kind), first
    if kind not in ("truncated", "missing"):
        assert first["position"] == await position_at(settings, seq)
    return first


async def swap(settings, a: int, b: int) -> None:
    await query(settings, "UPDATE audit_log SET seq = -1 WHERE seq = %s", (a,))
    await query(settings, "UPDATE audit_log SET seq = %s WHERE seq = %s", (a, b))
    await query(settings, "UPDATE audit_log SET seq = %s WHERE seq = -1", (b,))


async def shift_from(settings, seq: int, by: int) -> None:
    # Through negative numbers, so that no two rows ever hold the same seq midway.
    await query(settings, "UPDATE audit_log SET seq = -(seq + %s) WHERE seq >= %s", (by, seq))
    await query(settings, "UPDATE audit_log SET seq = -seq WHERE seq < 0")


async def test_a_second_copy_waits_as_a_standby_and_a_killed_writer_resumes_every_record_exactly_once(
    audit_settings, tmp_path
):
    s = audit_settings
    await publish_all(s, list(scripted_feed(agents=5, tasks=1500, seed=12)))
    env = env_of(s, AUDIT_BATCH_SIZE="20")
    command = [sys.executable, "-m", "services.cli", "serve", "audit"]
    log_file = tmp_path / "first.log"

    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as holder:
        # Another writer holds the chain: this copy must wait and write nothing.
        await holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (WRITER_LOCK, s.audit.db_schema))
        with log_file.open("w") as log:
            first = subprocess.Popen(command, env=env, cwd=ROOT, stderr=log)
        second = None
        try:
            await wait_for(lambda: _logged(log_file, "waiting as a standby"), what="the copy to wait as a standby")
            # A standby's fault would be to write anyway: once it has asked for the lock again after
            # saying it waits, it has been past the point where it would have started, so look then.
            said_it_waits = (await (await holder.execute("SELECT clock_timestamp()")).fetchone())[0]
            await wait_for(
                lambda: _asked_for_the_lock_since(holder, said_it_waits), what="the standby to ask for the lock again"
            )
            assert await rows_audited(s) == 0
            await holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (WRITER_LOCK, s.audit.db_schema))

            await wait_for(lambda: _at_least(rows_audited(s), 1), what="the copy to be mid-stream")
            first.send_signal(signal.SIGKILL)
            first.wait()
            partial = await rows_audited(s)
            second = subprocess.Popen(command, env=env, cwd=ROOT)
            total = await until_all_audited(s)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    assert process.wait(timeout=30) == 0

    assert 0 < partial < total, "the first copy was killed mid-stream"
    per_partition = await query(s, 'SELECT topic, partition, count(*), max("offset") FROM audit_log GROUP BY 1, 2')
    ends = {(tp.topic, tp.partition): end for tp, end in (await kafka.end_offsets(s, TOPICS)).items() if end}
    assert {(t, p): (n, o + 1) for t, p, n, o in per_partition} == {tp: (end, end) for tp, end in ends.items()}
    verdict = await verify(s)
    assert verdict.ok, verdict.as_text()
    assert verdict.rows == total


async def _logged(path: Path, text: str) -> bool:
    return text in path.read_text()


async def test_a_chain_rewritten_with_fresh_hashes_is_named_at_the_exact_row_against_the_broker(audit_settings):
    s = audit_settings.replace(audit_checkpoint_every_rows="100000")  # one checkpoint, at the clean stop
    await publish_all(s, list(scripted_feed(agents=3, tasks=60, seed=13)))
    async with running_auditor(s):
        total = await until_all_audited(s)
    intact = await verify(s, against_kafka=True)
    assert intact.ok and intact.rows == total, intact.as_text()

    await rewrite_from(s, seq=50, value=b'{"rewritten": true}')

    by_chain = (await verify(s)).as_json()["first_bad"]
    by_broker = cli(s, "audit", "verify", "--against-kafka", "--json")
    first = orjson.loads(by_broker.stdout)["first_bad"]
    assert (by_chain["seq"], by_chain["kind"]) == (total, "checkpoint_mismatch")  # only the checkpoint can tell
    assert by_broker.returncode == 1
    assert (first["seq"], first["kind"], first["position"]) == (50, "differs_from_kafka", await position_at(s, 50))


async def rewrite_from(settings, *, seq: int, value: bytes) -> None:
    """What someone with write access to the table does: change a row and recompute every hash after it."""
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        rows = [row async for row in read_rows(conn, settings.audit.db_schema)]
        before = rows[seq - 2]
        edited = [replace(rows[seq - 1].entry, value=value)] + [r.entry for r in rows[seq:]]
        redone, _ = extend(Head(before.seq, before.hash), edited)
        table = sql.Identifier(settings.audit.db_schema, "audit_log")
        async with conn.cursor() as cur:
            update = sql.SQL("UPDATE {} SET value = %s, prev_hash = %s, hash = %s WHERE seq = %s").format(table)
            await cur.executemany(update, [(r.entry.value, r.prev_hash, r.hash, r.seq) for r in redone])
        await conn.commit()
