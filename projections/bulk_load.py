"""Final rows into a fresh schema with COPY, indexes built once the rows are in.

Only for a schema nobody reads yet (a rebuild before its swap): the tables are loaded in one
transaction, so a failed load leaves them empty rather than half-filled.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import orjson
import psycopg
from psycopg import sql

from projections import rollups

Row = Mapping[str, Any]

_INDEXES = """
SELECT t.relname, ix.relname, pg_get_indexdef(i.indexrelid), con.conname, pg_get_constraintdef(con.oid)
FROM pg_index i
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_class ix ON ix.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = t.oid
WHERE n.nspname = %s AND t.relname = ANY(%s)
ORDER BY con.conname IS NULL, t.relname, ix.relname
"""


class Loader:
    """COPY into the empty tables of `schema`, inside the caller's transaction: each table's
    indexes (primary key included) are dropped before its first rows and rebuilt by `finish`.
    One sort per index after the load is far cheaper than keeping each index in order row by row."""

    def __init__(self, conn: psycopg.AsyncConnection, schema: str, types: Mapping[str, Mapping[str, str]]) -> None:
        self.conn, self.schema, self.types = conn, schema, types
        self._rebuild: list[str] = []
        self._unindexed: set[str] = set()

    @classmethod
    async def open(cls, conn: psycopg.AsyncConnection, schema: str) -> "Loader":
        return cls(conn, schema, await _column_types(conn, schema))

    async def copy(self, tables: Mapping[str, Iterable[Row]]) -> None:
        """Append the rows of each table ({table: rows})."""
        for name in sorted(tables):
            rows = list(tables[name])
            if not rows:
                continue
            if name not in self._unindexed:
                self._rebuild += await _drop_indexes(self.conn, self.schema, [name])
                self._unindexed.add(name)
            for columns, group in by_columns(rows).items():
                await _copy(self.conn, self.schema, name, [(c, self.types[name][c]) for c in columns], group)

    async def finish(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Record the consumed `positions`, rebuild the dropped indexes, then compute the rollups."""
        await self.copy(
            {
                "projection_positions": [
                    {"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(positions.items())
                ]
            }
        )
        for statement in self._rebuild:
            await self.conn.execute(statement)
        await self.conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.schema)))
        await rollups.rebuild(self.conn)


def by_columns(rows: Iterable[Row]) -> dict[tuple[str, ...], list[Row]]:
    """Rows grouped by the columns they hold: a column no operation wrote keeps its default, as in INSERT."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        columns = tuple(row)
        group = groups.get(columns)
        if group is None:
            group = groups[columns] = []
        group.append(row)
    return groups


async def _copy(
    conn: psycopg.AsyncConnection, schema: str, table: str, columns: list[tuple[str, str]], rows: list[Row]
) -> None:
    """COPY in binary: psycopg formats timestamps and numbers for it at a third of the cost of text."""
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c, _ in columns)
    )
    as_json = [type_name in _JSON_PREFIX for _, type_name in columns]
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        # A JSON value goes as the bytes of its binary form, written here by orjson, as the
        # row-by-row path writes it too.
        copy.set_types(["bytea" if json else type_name for (_, type_name), json in zip(columns, as_json)])
        if any(as_json):
            prefixes = [_JSON_PREFIX.get(type_name) for _, type_name in columns]
            for row in rows:
                await copy.write_row(
                    [v if p is None or v is None else p + orjson.dumps(v) for v, p in zip(row.values(), prefixes)]
                )
        else:
            for row in rows:
                await copy.write_row(tuple(row.values()))


# The binary form of jsonb is a format version (1) and the JSON text; that of json, the text alone.
_JSON_PREFIX = {"jsonb": b"\x01", "json": b""}


async def _column_types(conn: psycopg.AsyncConnection, schema: str) -> dict[str, dict[str, str]]:
    cur = await conn.execute(
        "SELECT table_name, column_name, udt_name FROM information_schema.columns WHERE table_schema = %s", (schema,)
    )
    found: dict[str, dict[str, str]] = {}
    for table, column, type_name in await cur.fetchall():
        found.setdefault(table, {})[column] = type_name
    return found


async def _drop_indexes(conn: psycopg.AsyncConnection, schema: str, tables: list[str]) -> list[str]:
    """Drop the indexes (primary keys included) of `tables`; return the statements that rebuild them."""
    cur = await conn.execute(_INDEXES, (schema, tables))
    rebuild = []
    for table, index, index_def, constraint, constraint_def in await cur.fetchall():
        qualified = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        if constraint:
            await conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(qualified, sql.Identifier(constraint))
            )
            rebuild.append(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}")
                .format(qualified, sql.Identifier(constraint), sql.SQL(constraint_def))
                .as_string(conn)
            )
        else:
            await conn.execute(sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(index)))
            rebuild.append(index_def)
    return rebuild
