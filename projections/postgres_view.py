"""The PostgreSQL view: row operations and the Kafka position in one transaction.

The guard: each partition's stored offset is locked, events at or below it are
skipped, and the new offset is written with the rows. A repeated or older delivery
therefore changes nothing, and two projector copies never apply the same event twice.
A batch that writes tasks or assignments also moves the rollups (projections/rollups.py) with them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_dumps

from projections import rollups
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
        self._changes_table = False  # the session's temporary table of rollup changes exists

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
            newest = {(p.topic, p.partition): p.offset for p, _ in fresh}
            ops = [op for _, ops in fresh for op in ops]
            tasks = rollups.touched_tasks(ops)
            if tasks:
                await self._rollups_before(cur, tasks)
            async with self.conn.pipeline():
                for statement, params in compile_batch(ops):
                    await cur.execute(statement, params)
                if tasks:
                    await cur.execute(rollups.CAPTURE, {"ids": tasks, "sign": 1})
                    for statement in rollups.APPLY:
                        await cur.execute(statement)
                await cur.executemany(
                    'UPDATE projection_positions SET "offset" = %s '
                    'WHERE topic = %s AND partition = %s AND "offset" < %s',
                    [(o, t, p, o) for (t, p), o in newest.items()],
                )
        self._changes_table = self._changes_table or bool(tasks)
        return len(fresh)

    async def _rollups_before(self, cur, tasks: list[str]) -> None:
        """Take the rollups' lock, and count out what `tasks` added to them before this batch."""
        if not self._changes_table:
            await cur.execute(rollups.CHANGES_TABLE)
        await cur.execute("SELECT pg_advisory_xact_lock(%s::int, hashtext(%s))", (rollups.ROLLUP_LOCK, self.schema))
        await cur.execute(rollups.CAPTURE, {"ids": tasks, "sign": -1})

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
            'INSERT INTO projection_positions (topic, partition, "offset") VALUES (%s, %s, -1) ON CONFLICT DO NOTHING',
            sorted(partitions),
        )
        await cur.execute(
            'SELECT topic, partition, "offset" FROM projection_positions '
            "WHERE (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[])) "
            "ORDER BY topic, partition FOR UPDATE",
            ([t for t, _ in sorted(partitions)], [p for _, p in sorted(partitions)]),
        )
        return {(t, p): o for t, p, o in await cur.fetchall()}


def compile_batch(ops: list[Op]) -> list[tuple[str, tuple]]:
    """Statements that apply `ops` with the effect of applying them one by one, in order.

    Rows of the same shape travel together as one JSON array, expanded by PostgreSQL with
    jsonb_populate_recordset into the table's own column types: one parameter per statement
    instead of one per value, which is where the time went (psycopg adapts each parameter in
    Python). One statement may not touch a row twice (ON CONFLICT DO UPDATE refuses it), and
    later operations on a row must follow earlier ones; so each operation goes one layer past
    the last one that touched its row, a Delete (which may match many rows) past everything
    before it on its table, and everything after it past the Delete. Within a layer, order
    does not matter: no two operations share a row, and tables do not depend on each other.
    """
    layers: list[dict[tuple, list[Op]]] = []
    row_layer: dict[tuple, int] = {}
    table_floor: dict[str, int] = {}  # the layer of the latest Delete on the table
    table_top: dict[str, int] = {}
    for op in ops:
        if isinstance(op, Delete):
            layer = table_top.get(op.table, -1) + 1
            table_floor[op.table] = layer
        else:
            row = (op.table, *(op.key.values() if isinstance(op, Upsert) else (op.row.get(k) for k in op.key)))
            layer = max(row_layer.get(row, -1), table_floor.get(op.table, -1)) + 1
            row_layer[row] = layer
        table_top[op.table] = max(table_top.get(op.table, -1), layer)
        if layer == len(layers):
            layers.append({})
        layers[layer].setdefault(_shape(op), []).append(op)
    statements = []
    for layer in layers:
        for shape, same in layer.items():
            if shape[0] == "delete":  # rare: an agent's capabilities, at (re)registration
                statements += [compile_op(op) for op in same]
            elif shape[0] == "upsert":
                statements.append(
                    (_upsert_sql(*shape[1:], rows="json"), (Jsonb([{**op.key, **op.values} for op in same]),))
                )
            else:
                statements.append((_insert_sql(*shape[1:], rows="json"), (Jsonb([op.row for op in same]),)))
    return statements


def _shape(op: Op) -> tuple:
    if isinstance(op, Upsert):
        return (
            "upsert",
            op.table,
            tuple(op.key),
            tuple(op.values),
            tuple(("ranked" if c in op.rank else op.rule(c)) for c in op.values),
            op.rank,
        )
    if isinstance(op, Insert):
        return ("insert", op.table, tuple(op.row))
    return ("delete", op.table, tuple(op.key))


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
def _upsert_sql(table: str, key: tuple, columns: tuple, rules: tuple, rank: tuple, rows: str = "one") -> str:
    t, ex = sql.Identifier(table), sql.Identifier("excluded")
    col = lambda owner, c: sql.SQL("{}.{}").format(owner, sql.Identifier(c))  # noqa: E731
    outranks = sql.SQL("TRUE")
    if rank:
        outranks = sql.SQL("({} IS NULL OR ({}) > ({}))").format(
            col(t, rank[0]), sql.SQL(", ").join(col(ex, c) for c in rank), sql.SQL(", ").join(col(t, c) for c in rank)
        )
    merges = {
        "set": "{new}",
        "keep": "COALESCE({old}, {new})",
        "max": "GREATEST({old}, {new})",
        "min": "LEAST({old}, {new})",
        "add": "COALESCE({old}, 0) + COALESCE({new}, 0)",
        "ranked": "CASE WHEN {outranks} THEN {new} ELSE {old} END",
    }
    assignments = [
        sql.SQL("{} = ").format(sql.Identifier(c))
        + sql.SQL(merges[rule]).format(old=col(t, c), new=col(ex, c), outranks=outranks)
        for c, rule in zip(columns, rules)
    ]
    all_columns = (*key, *columns)
    return _render(
        sql.SQL("INSERT INTO {} ({}) {} ON CONFLICT ({}) DO {}").format(
            t,
            sql.SQL(", ").join(map(sql.Identifier, all_columns)),
            _source(table, all_columns, rows),
            sql.SQL(", ").join(map(sql.Identifier, key)),
            sql.SQL("UPDATE SET ") + sql.SQL(", ").join(assignments) if assignments else sql.SQL("NOTHING"),
        )
    )


@lru_cache(maxsize=128)
def _insert_sql(table: str, columns: tuple, rows: str = "one") -> str:
    return _render(
        sql.SQL("INSERT INTO {} ({}) {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)), _source(table, columns, rows)
        )
    )


def _source(table: str, columns: tuple, rows: str) -> sql.Composable:
    """One row of parameters, or every row from one JSON array of objects, typed by the table."""
    if rows == "one":
        return sql.SQL("VALUES ({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    return sql.SQL("SELECT {} FROM jsonb_populate_recordset(NULL::{}, %s)").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
    )


@lru_cache(maxsize=128)
def _delete_sql(table: str, key: tuple) -> str:
    return _render(
        sql.SQL("DELETE FROM {} WHERE {}").format(
            sql.Identifier(table), sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in key)
        )
    )


def _render(statement: sql.Composed) -> str:
    # Rendered once per shape and cached: psycopg would otherwise re-render it per execute.
    return statement.as_string(None)


async def dump(conn: psycopg.AsyncConnection, schema: str) -> dict[str, list[tuple]]:
    """Every read-model table of `schema`, rows ordered by all columns: for comparisons."""
    cur = await conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name",
        (schema,),
    )
    tables = [row[0] for row in await cur.fetchall()]
    result = {}
    for table in tables:
        cur = await conn.execute(sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        rows = await cur.fetchall()
        result[table] = sorted(rows, key=repr)
    return result
