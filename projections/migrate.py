"""Versioned schema migrations, applied by the projector at start.

Files `migrations/NNNN_name.sql` run once each, in order, inside one transaction per
file, into the schema given (the live one, or a fresh one for a rebuild).
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg
from psycopg import sql

MIGRATION_LOCK = 0x6F72636D  # advisory lock: one migrator at a time
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("projections") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


async def migrate(conn: psycopg.AsyncConnection, schema: str) -> list[str]:
    """Bring `schema` up to date; return the names of the files applied now."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations (version int PRIMARY KEY, name text NOT NULL)"
            ).format(sql.Identifier(schema))
        )
        cur = await conn.execute(sql.SQL("SELECT version FROM {}.schema_migrations").format(sql.Identifier(schema)))
        done = {row[0] for row in await cur.fetchall()}
        for version, name, text in migration_files():
            if version in done:
                continue
            await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
            await conn.execute(text)
            await conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations VALUES (%s, %s)").format(sql.Identifier(schema)),
                (version, name),
            )
            applied_now.append(name)
    return applied_now
