"""The audit log in PostgreSQL: one writer, rows appended with COPY, read back in seq order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import psycopg
from psycopg import sql

from services.audit.chain import GENESIS, Entry, Head, Row, decode_headers, encode_headers

# Advisory lock (with the schema's hash as second key): one writer per chain.
WRITER_LOCK = 0x61756474
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
_COLUMNS = ("seq", "topic", "partition", "offset", "kafka_timestamp_ms", "key", "value", "headers", "prev_hash", "hash")
log = logging.getLogger("orchestrator.audit")


async def ensure_schema(conn: psycopg.AsyncConnection, schema: str) -> bool:
    """Create the schema and table if missing; True if created now.

    Checked first, so that a writer role without CREATE rights starts on a prepared schema.
    """
    cur = await conn.execute("SELECT to_regclass(%s)", (f'"{schema}".audit_log',))
    if (await cur.fetchone())[0] is not None:
        return False
    async with conn.transaction():
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        await conn.execute(SCHEMA_SQL.read_text())
    return True


class AuditStore:
    def __init__(self, conn: psycopg.AsyncConnection, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self.table = sql.Identifier(schema, "audit_log")
        self.positions: dict[tuple[str, int], int] = {}  # newest stored offset per partition

    @classmethod
    async def connect(cls, url: str, schema: str) -> "AuditStore":
        return cls(await psycopg.AsyncConnection.connect(url, autocommit=True), schema)

    async def close(self) -> None:
        await self.conn.close()

    async def wait_for_lock(self, stop: asyncio.Event, poll_s: float = 1.0) -> bool:
        """Become the chain's only writer; a second copy waits here as a standby.

        The lock is the session's: if this process dies its connection goes, and with it the lock.
        """
        waiting_logged = False
        while not stop.is_set():
            cur = await self.conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (WRITER_LOCK, self.schema))
            if (await cur.fetchone())[0]:
                return True
            if not waiting_logged:
                log.info("another audit writer holds the chain of schema %s; waiting as a standby", self.schema)
                waiting_logged = True
            try:
                await asyncio.wait_for(stop.wait(), poll_s)
            except asyncio.TimeoutError:
                pass
        return False

    async def head(self) -> tuple[Head, str]:
        """The newest row's seq and hash, and its position, or the genesis."""
        cur = await self.conn.execute(
            sql.SQL('SELECT seq, hash, topic, partition, "offset" FROM {} ORDER BY seq DESC LIMIT 1').format(self.table)
        )
        row = await cur.fetchone()
        if row is None:
            return Head(0, GENESIS), ""
        return Head(row[0], bytes(row[1])), f"{row[2]}[{row[3]}]@{row[4]}"

    async def stored_positions(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = sorted(set(partitions))
        cur = await self.conn.execute(
            sql.SQL(
                "SELECT p.topic, p.partition, newest.offset FROM unnest(%s::text[], %s::int[]) AS p(topic, partition) "
                'CROSS JOIN LATERAL (SELECT max("offset") AS offset FROM {} a '
                "WHERE a.topic = p.topic AND a.partition = p.partition) newest "
                "WHERE newest.offset IS NOT NULL"
            ).format(self.table),
            ([t for t, _ in wanted], [p for _, p in wanted]),
        )
        found = {(t, p): o for t, p, o in await cur.fetchall()}
        self.positions.update(found)
        return found

    async def append(self, rows: list[Row]) -> None:
        """Rows and, with them, the positions they cover: one transaction."""
        if not rows:
            return
        columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
        async with self.conn.transaction():
            async with self.conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(self.table, columns)) as copy:
                for row in rows:
                    e = row.entry
                    await copy.write_row(
                        (
                            row.seq,
                            e.topic,
                            e.partition,
                            e.offset,
                            e.timestamp_ms,
                            e.key,
                            e.value,
                            encode_headers(e.headers),
                            row.prev_hash,
                            row.hash,
                        )
                    )
        for row in rows:
            self.positions[(row.entry.topic, row.entry.partition)] = row.entry.offset


async def read_rows(conn: psycopg.AsyncConnection, schema: str, batch: int = 5000) -> AsyncIterator[Row]:
    """Every row in seq order, streamed by a server-side cursor (the caller holds a transaction)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
    async with conn.cursor(name="audit_verify") as cur:
        cur.itersize = batch
        table = sql.Identifier(schema, "audit_log")
        await cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY seq").format(columns, table))
        async for seq, topic, partition, offset, ts, key, value, headers, prev_hash, digest in cur:
            entry = Entry(topic, partition, offset, ts, _bytes(key), _bytes(value), decode_headers(bytes(headers)))
            yield Row(seq, entry, bytes(prev_hash), bytes(digest))


def _bytes(value) -> bytes | None:
    return None if value is None else bytes(value)
