"""Audit projector throughput next to the projector's, and `audit verify`'s rate, on the real stack.

    python -m bench.micro.audit --records 50000

Publishes a scripted feed of about `--records` records under a fresh topic prefix, then
times the audit projector and the projector catching up with it from the start, each
alone, and `audit verify` over the chain; prints the figures with the machine's description.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from bench.demo.feed import scripted_feed
from bench.machine import describe
from bench.micro.projection import _publish
from events.topics import TOPICS, topic_name
from services import kafka
from services.audit.bootstrap import auditor_running, run_until
from services.audit.verify import verify
from services.projector.bootstrap import projector_running
from services.projector.catchup import wait_until_caught_up
from services.settings import Settings

RECORDS_PER_TASK = 5.7  # what the scripted feed yields on average


async def _audited(settings: Settings) -> int:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        try:
            cur = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(settings.audit.db_schema, "audit_log"))
            )
        except psycopg.errors.UndefinedTable:
            return 0
        return (await cur.fetchone())[0]


async def _until_audited(settings: Settings, records: int) -> None:
    while await _audited(settings) < records:
        await asyncio.sleep(0.05)


async def _catch_up_seconds(running, consume, caught_up) -> float:
    """Seconds from starting a processor to `caught_up()` returning; the processor is stopped after."""
    stop = asyncio.Event()
    async with running(stop) as processor:
        started = time.perf_counter()
        runner = asyncio.create_task(consume(processor, stop))
        await caught_up()
        seconds = time.perf_counter() - started
        stop.set()
        await runner
    return seconds


async def run(records: int, keep: bool) -> dict:
    tag = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    settings = Settings.from_env(
        topic_prefix=f"bench-{tag}",
        db_schema=f"bench_{tag}",
        audit_db_schema=f"bench_audit_{tag}",
        audit_checkpoint_dir=str(workdir / "checkpoints"),
        audit_signing_key_file=str(workdir / "signing-key.pem"),
    )
    await kafka.ensure_topics(settings)
    events = list(scripted_feed(agents=20, tasks=int(records / RECORDS_PER_TASK), seed=11))
    await _publish(settings, events)
    print(f"published {len(events)} records", flush=True)

    audit_s = await _catch_up_seconds(
        lambda stop: auditor_running(settings, stop), run_until, lambda: _until_audited(settings, len(events))
    )
    print(f"audited {len(events)} records in {audit_s:.2f}s", flush=True)
    project_s = await _catch_up_seconds(
        lambda stop: projector_running(settings),
        lambda projector, stop: projector.run(stop),
        lambda: wait_until_caught_up(settings, timeout=3600),
    )
    print(f"projected {len(events)} records in {project_s:.2f}s", flush=True)
    started = time.perf_counter()
    verdict = await verify(settings)
    verify_s = time.perf_counter() - started
    result = {
        "records": len(events),
        "audit_records_per_second": round(len(events) / audit_s),
        "projector_records_per_second": round(len(events) / project_s),
        "verify_rows_per_second": round(verdict.rows / verify_s),
        "verify_ok": verdict.ok,
        "checkpoints": verdict.checkpoints,
        "machine": describe(),
    }
    if not keep:
        async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {}, {} CASCADE").format(
                    sql.Identifier(settings.db_schema), sql.Identifier(settings.audit.db_schema)
                )
            )
        await _delete_topics(settings)
    return result


async def _delete_topics(settings: Settings) -> None:
    # Each partition left behind holds a file open in the broker for as long as it runs.
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings, "the Kafka admin API")
    try:
        await admin.delete_topics([topic_name(spec, settings.topic_prefix) for spec in TOPICS])
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50000, help="records in the feed (approximately)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's schemas")
    options = vars(parser.parse_args())
    print(json.dumps(asyncio.run(run(**options)), indent=2))


if __name__ == "__main__":
    main()
