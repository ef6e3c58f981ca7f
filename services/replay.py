"""Rebuild by replay: every read model from the earliest offsets into a fresh schema.

The full rebuild then catches up with the log under the swap lock and renames the new
schema over the live one in one transaction, so analysts never see a half-built table
and the live projector simply continues in the new schema. `--into` builds a separate
copy (optionally only up to a point in time) and leaves the live schema alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from psycopg import sql

from events.topics import EVENT_TOPICS
from projections.batch import in_log_order, position_of, prepare
from projections.bulk_load import Loader
from projections.folded_log import FoldedLog
from projections.postgres_view import SWAP_LOCK, PostgresView
from projections.rows import HISTORY_TABLES
from services import kafka
from services.identity.gate import IdentityGate
from services.projector.bootstrap import open_view
from services.settings import Settings


class ReplayError(RuntimeError):
    pass


@dataclass
class ReplayReport:
    schema: str
    events: int
    rejected: int
    seconds: float
    swapped: bool

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Progress:
    """Prints events/s and ETA at most every `every` seconds."""

    def __init__(self, total: int, out=sys.stderr, every: float = 1.0) -> None:
        self.total, self.out, self.every = total, out, every
        self.started = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate and self.total > done else 0.0
        pct = 100.0 * done / self.total if self.total else 100.0
        print(
            f"replay: {done}/{self.total} events ({pct:5.1f}%) {rate:,.0f} events/s ETA {eta:,.0f}s",
            file=self.out,
            flush=True,
        )


async def replay(
    settings: Settings,
    *,
    until: datetime | None = None,
    into: str | None = None,
    replace: bool = False,
    progress_out=sys.stderr,
    bulk: bool = True,
) -> ReplayReport:
    """Rebuild into a fresh schema. `bulk` folds the log in memory and loads the final rows with
    COPY; without it every batch is upserted as the live projector does (same tables, slower)."""
    target = into or f"{settings.db_schema}_rebuild_{int(time.time())}"
    if target == settings.db_schema:
        raise ReplayError("--into must name a schema other than the live one")
    admin_view = await open_view(settings)  # also makes sure the live schema exists
    try:
        await _prepare_target(admin_view, target, replace or not into)
    finally:
        await admin_view.close()
    view = await open_view(settings, target)
    started = time.monotonic()
    try:
        ends = await _end_offsets(settings)
        progress = Progress(sum(ends.values()), out=progress_out)
        first_pass = _bulk_load if bulk else _consume
        events, rejected = await first_pass(settings, view, ends, until, progress.update)
        swapped = False
        if into is None:
            more, more_rejected = await _catch_up_and_swap(settings, view, target)
            events, rejected, swapped = events + more, rejected + more_rejected, True
        progress.update(events, final=True)
    finally:
        await view.close()
    return ReplayReport(
        settings.db_schema if into is None else target, events, rejected, time.monotonic() - started, swapped
    )


async def _end_offsets(settings: Settings) -> dict:
    """The end offset of every event partition, asked of a consumer they are assigned to: it
    learns their leaders at once, where an unassigned probe waits most of a second for them."""
    wanted = kafka.partitions(settings, EVENT_TOPICS)
    probe = kafka.consumer(settings)
    await kafka.start(probe, settings)
    try:
        probe.assign(wanted)
        return await probe.end_offsets(wanted)
    finally:
        await probe.stop()


async def _prepare_target(view: PostgresView, schema: str, replace: bool) -> None:
    cur = await view.conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,))
    if await cur.fetchone():
        if not replace:
            raise ReplayError(f"schema {schema!r} already exists; pass --replace to overwrite it")
        await view.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@contextlib.asynccontextmanager
async def _log_batches(settings: Settings, view: PostgresView, ends: dict):
    """An iterator of (accepted, refused) batches of every record below `ends` (partition -> end
    offset), from the stored positions of `view` on, each in log order."""
    pending = {tp: end for tp, end in ends.items() if end > 0}
    consumer = kafka.consumer(settings, max_partition_fetch_bytes=8 * 1024 * 1024)
    await kafka.start(consumer, settings)
    gate = IdentityGate(settings)
    try:
        stored = await view.stored_positions((tp.topic, tp.partition) for tp in pending)
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, stored.get((tp.topic, tp.partition), -1) + 1)
        yield _batches(consumer, gate, pending, settings.batch_size)
    finally:
        await gate.stop()
        await consumer.stop()


async def _batches(consumer, gate: IdentityGate, pending: dict, batch_size: int):
    while pending:
        fetched = await consumer.getmany(*pending, timeout_ms=500, max_records=batch_size)
        # Partition by partition, each already in offset order: the batch is in log order.
        records = [
            r
            for tp, rs in sorted(fetched.items(), key=lambda item: (item[0].topic, item[0].partition))
            for r in rs
            if r.offset < pending.get(tp, 0)
        ]
        # The live projector refused these as not coming from the agent they speak for:
        # a rebuild refuses them too (the reports themselves are on the security topic).
        yield await gate.split(records)
        for tp in list(pending):
            if await consumer.position(tp) >= pending[tp]:
                del pending[tp]
                consumer.pause(tp)


async def _consume(
    settings: Settings, view: PostgresView, ends: dict, until: datetime | None, on_progress: Callable[[int], None]
) -> tuple[int, int]:
    """Apply every record below `ends` (partition -> end offset) to `view`, batch by batch."""
    events = rejected = 0
    writing: asyncio.Task | None = None  # the previous batch, still being written
    try:
        async with _log_batches(settings, view, ends) as batches:
            async for accepted, refused in batches:
                prepared = prepare(accepted, until)
                skipped = [position_of(r) for r, _ in prepared.rejected] + [position_of(r) for r, _ in refused]
                batch = in_log_order(prepared.batch + [(position, []) for position in skipped])
                # Decoding is Python's work and writing is PostgreSQL's: this batch was decoded
                # while the last one was written. One write at a time keeps the positions in order.
                if writing:
                    await writing
                writing = asyncio.create_task(view.apply(batch))
                events += len(accepted) + len(refused)
                rejected += len(prepared.rejected) + len(refused)
                on_progress(events)
            if writing:
                await writing
    finally:
        if writing and not writing.done():
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
    return events, rejected


# Rows of history tables folded since the last COPY that make the next one worth starting.
STREAM_ROWS = 500
FOLD_SLICE = 200


async def _bulk_load(
    settings: Settings, view: PostgresView, ends: dict, until: datetime | None, on_progress: Callable[[int], None]
) -> tuple[int, int]:
    """Fold every record below `ends` into its final rows in memory, then COPY them into the
    fresh schema of `view` with the positions consumed: the same tables `_consume` writes.

    Rows of history tables are final once folded: they are copied while the rest of the log is
    still being folded, so PostgreSQL parses them (their JSON most of all) on its own core
    meanwhile. One transaction for all of it: a failed load leaves the tables empty."""
    folding = FoldedLog(until, streamed=HISTORY_TABLES)
    writing: asyncio.Task | None = None  # the last rows handed to PostgreSQL, still being copied
    with collector_paused():
        async with view.conn.transaction():
            loader = await Loader.open(view.conn, view.schema)
            try:
                async with _log_batches(settings, view, ends) as batches:
                    async for accepted, refused in batches:
                        folding.take([], [r for r, _ in refused])
                        for start in range(0, len(accepted), FOLD_SLICE):
                            folding.take(accepted[start : start + FOLD_SLICE], [])
                            if folding.fold.new_row_count >= STREAM_ROWS and (writing is None or writing.done()):
                                if writing:
                                    await writing  # done: raises what it raised
                                writing = asyncio.create_task(loader.copy(folding.fold.take_new_rows()))
                            await asyncio.sleep(0)  # the COPY under way sends what PostgreSQL has taken
                        on_progress(folding.events)
                if writing:
                    await writing
                    writing = None
            finally:
                if writing and not writing.done():
                    writing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await writing
            await loader.copy(folding.fold.take_new_rows())
            await loader.copy({name: rows.values() for name, rows in folding.fold.tables.items()})
            await loader.finish(folding.positions)
    return folding.events, folding.rejected


@contextlib.contextmanager
def collector_paused():
    # Folding keeps every row alive until the load, and each pass of the cyclic collector
    # would walk them all again; rows and events hold no cycles for it to find.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _catch_up_and_swap(settings: Settings, view: PostgresView, target: str) -> tuple[int, int]:
    live = settings.db_schema
    async with view.conn.transaction():
        # Exclusive: the live projector's batches wait, so nothing lands in the old
        # schema between the catch-up and the rename.
        await view.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SWAP_LOCK,))
        ends = await _end_offsets(settings)
        events, rejected = await _consume(settings, view, ends, None, lambda _: None)
        retired = f"{live}_retired_{int(time.time())}"
        await view.conn.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(live), sql.Identifier(retired))
        )
        await view.conn.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(target), sql.Identifier(live))
        )
        await view.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(retired)))
    return events, rejected
