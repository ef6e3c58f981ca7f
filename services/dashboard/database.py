"""The dashboard's one way into PostgreSQL: as the analyst role, read-only, on the read models.

Whoever the URL logs in as, the session narrows itself to `<prefix>_analyst` before reading
anything, so the page can show no more than an analyst with psql could. The URL's TLS
parameters (sslmode, sslrootcert, ...) are kept as they are; the key store is never named.
"""

from __future__ import annotations

import psycopg
from psycopg import AsyncClientCursor, sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from services.audit.roles import Roles
from services.dashboard.queries import Filters, Panel
from services.settings import Settings

STATEMENT_TIMEOUT_MS = 15_000


class AnalystRoleMissing(RuntimeError):
    pass


def analyst_role(settings: Settings) -> str:
    return Roles.named(settings.db_role_prefix).analyst


def analyst_conninfo(settings: Settings) -> str:
    """DASHBOARD_DATABASE_URL as given; else DATABASE_URL, logged in as the analyst if it has a password."""
    if settings.dashboard.database_url:
        return settings.dashboard.database_url
    if settings.db_analyst_password:
        return make_conninfo(settings.database_url, user=analyst_role(settings), password=settings.db_analyst_password)
    return settings.database_url


async def connect(settings: Settings) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(
        analyst_conninfo(settings), autocommit=True, cursor_factory=AsyncClientCursor
    )
    try:
        await narrow(conn, settings)
    except BaseException:
        await conn.close()
        raise
    return conn


async def narrow(conn: psycopg.AsyncConnection, settings: Settings) -> None:
    role = analyst_role(settings)
    current = (await (await conn.execute("SELECT current_user")).fetchone())[0]
    if current != role:
        try:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        except (psycopg.errors.InvalidParameterValue, psycopg.errors.InsufficientPrivilege) as error:
            raise AnalystRoleMissing(
                f"the dashboard reads as {role}, and {current} cannot become it ({error}); "
                "create the roles with `orchestrator db roles`"
            ) from None
    await conn.execute("SET default_transaction_read_only = on")
    await conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT_MS)))
    await conn.execute("SET TIME ZONE 'UTC'")
    # Each panel's statement does milliseconds of work; compiling it costs more (the saturation
    # forecast over a week spent 860 ms in JIT for 30 ms of work).
    await conn.execute("SET jit = off")
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))


def statement(panel: Panel, settings: Settings, filters: Filters | None = None) -> str:
    """The panel's SQL for `filters` (from its rollup for a wide range), with the audit schema named:
    the text both run and shown."""
    text = panel.sql_for(filters) if filters else panel.sql
    if "{audit}" not in text:
        return text.strip()
    return sql.SQL(text.strip()).format(audit=sql.Identifier(settings.audit.db_schema)).as_string(None)


async def run(conn: psycopg.AsyncConnection, query: str, params: dict) -> tuple[str, list[dict]]:
    """(the statement with its values in place, its rows): what ran is exactly what the page shows."""
    async with AsyncClientCursor(conn, row_factory=dict_row) as cur:
        text = cur.mogrify(query, {k: v for k, v in params.items() if f"%({k})s" in query})
        await cur.execute(text)
        return text, await cur.fetchall()


async def whoami(conn: psycopg.AsyncConnection) -> dict:
    cur = await conn.execute(
        "SELECT current_user, session_user, current_setting('default_transaction_read_only'), "
        "coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)"
    )
    role, login, read_only, tls = await cur.fetchone()
    return {"role": role, "login": login, "read_only": read_only == "on", "tls": bool(tls)}
