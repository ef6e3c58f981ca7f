"""The PostgreSQL view: row operations and the Kafka position in one transaction.

The guard: each partition's stored offset is locked, events at or below it are
skipped, and the new offset is written with the rows. A repeated or older delivery
therefore changes nothing, and two projector copies never apply the same event twice.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_dumps

from projections.ops import Delete, Insert, Op, Position, Upsert

# Shared with `replay`: live batches take it shared, the swap takes it exclusively.
SWAP_LOCK = 0x6F726373

set_json_dumps(orjson.dumps)


def _param(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, (dict, list, tuple)) else value


class PostgresView:
    def __init__(self, conn: psycopg.AsyncConnection, schema: str) -> None:
        self.conn = conn
        self.schema = schema

    @classmethod
    async def connect(cls, url: str, schema: str) -> "PostgresView":
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=2)
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return cls(conn, schema)

    async def close(self) -> None:
        await self.conn.close()

    async def stored_positions(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = set(partitions)
        cur = await self.conn.execute('SELECT topic, partition, "offset" FROM projection_positions')
        return {(t, p): o for t, p, o in await cur.fetchall() if (t, p) in wanted}

    async def apply(self, batch: list[tuple[Position, list[Op]]]) -> int:
        if not batch:
            return 0
        async with self.conn.transaction():
            cur = self.conn.cursor()
            await cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (SWAP_LOCK,))
            stored = await self._lock_positions(cur, {(p.topic, p.partition) for p, _ in batch})
            fresh = [(p, ops) for p, ops in batch if p.offset > stored[(p.topic, p.partition)]]
            if not fresh:
                return 0
            newest: dict[tuple[str, int], int] = {}
            async with self.conn.pipeline():
                for position, ops in fresh:
                    for op in ops:
                        statement, params = compile_op(op)
                        await cur.execute(statement, params)
                    newest[(position.topic, position.partition)] = position.offset
                await cur.executemany(
                    'UPDATE projection_positions SET "offset" = %s '
                    'WHERE topic = %s AND partition = %s AND "offset" < %s',
                    [(o, t, p, o) for (t, p), o in newest.items()])
            return len(fresh)

    async def apply_each(self, batch: list[tuple[Position, list[Op]]]):
        """Apply one event per transaction; yield (position, error or None).

        The slow path, used only when a batch fails, to find the event that fails.
        """
        for item in batch:
            try:
                await self.apply([item])
            except psycopg.Error as error:
                yield item[0], error
            else:
                yield item[0], None

    async def advance(self, positions: list[Position]) -> None:
        """Record positions of events that produced no rows (e.g. dead-lettered ones)."""
        await self.apply([(p, []) for p in positions])

    async def _lock_positions(self, cur, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        # Insert missing rows first so that FOR UPDATE has something to lock even for a
        # partition no copy has seen yet.
        await cur.executemany(
            'INSERT INTO projection_positions (topic, partition, "offset") VALUES (%s, %s, -1) '
            "ON CONFLICT DO NOTHING", sorted(partitions))
        await cur.execute(
            'SELECT topic, partition, "offset" FROM projection_positions '
            "WHERE (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[])) "
            "ORDER BY topic, partition FOR UPDATE",
            ([t for t, _ in sorted(partitions)], [p for _, p in sorted(partitions)]))
        return {(t, p): o for t, p, o in await cur.fetchall()}


def compile_op(op: Op) -> tuple[str, tuple]:
    if isinstance(op, Upsert):
        rules = tuple(("ranked" if c in op.rank else op.rule(c)) for c in op.values)
        statement = _upsert_sql(op.table, tuple(op.key), tuple(op.values), rules, op.rank)
        return statement, tuple(_param(v) for v in (*op.key.values(), *op.values.values()))
    if isinstance(op, Insert):
        return _insert_sql(op.table, tuple(op.row)), tuple(_param(v) for v in op.row.values())
    if isinstance(op, Delete):
        return _delete_sql(op.table, tuple(op.key)), tuple(op.key.values())
    raise TypeError(f"not a row operation: {op!r}")


@lru_cache(maxsize=512)
def _upsert_sql(table: str, key: tuple, columns: tuple, rules: tuple, rank: tuple) -> str:
    t, ex = sql.Identifier(table), sql.Identifier("excluded")
    col = lambda owner, c: sql.SQL("{}.{}").format(owner, sql.Identifier(c))  # noqa: E731
    outranks = sql.SQL("TRUE")
    if rank:
        outranks = sql.SQL("({} IS NULL OR ({}) > ({}))").format(
            col(t, rank[0]),
            sql.SQL(", ").join(col(ex, c) for c in rank),
            sql.SQL(", ").join(col(t, c) for c in rank))
    merges = {
        "set": "{new}", "keep": "COALESCE({old}, {new})", "max": "GREATEST({old}, {new})",
        "min": "LEAST({old}, {new})", "add": "COALESCE({old}, 0) + COALESCE({new}, 0)",
        "ranked": "CASE WHEN {outranks} THEN {new} ELSE {old} END",
    }
    assignments = [
        sql.SQL("{} = ").format(sql.Identifier(c)) + sql.SQL(merges[rule]).format(
            old=col(t, c), new=col(ex, c), outranks=outranks)
        for c, rule in zip(columns, rules)
    ]
    all_columns = (*key, *columns)
    return _render(sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO {}").format(
        t, sql.SQL(", ").join(map(sql.Identifier, all_columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(all_columns)),
        sql.SQL(", ").join(map(sql.Identifier, key)),
        sql.SQL("UPDATE SET ") + sql.SQL(", ").join(assignments) if assignments else sql.SQL("NOTHING")))


@lru_cache(maxsize=128)
def _insert_sql(table: str, columns: tuple) -> str:
    return _render(sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns))))


@lru_cache(maxsize=128)
def _delete_sql(table: str, key: tuple) -> str:
    return _render(sql.SQL("DELETE FROM {} WHERE {}").format(
        sql.Identifier(table),
        sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in key)))


def _render(statement: sql.Composed) -> str:
    # Rendered once per shape and cached: psycopg would otherwise re-render it per execute.
    return statement.as_string(None)


async def dump(conn: psycopg.AsyncConnection, schema: str) -> dict[str, list[tuple]]:
    """Every read-model table of `schema`, rows ordered by all columns: for comparisons."""
    cur = await conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name", (schema,))
    tables = [row[0] for row in await cur.fetchall()]
    result = {}
    for table in tables:
        cur = await conn.execute(sql.SQL("SELECT * FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)))
        rows = await cur.fetchall()
        result[table] = sorted(rows, key=repr)
    return result
