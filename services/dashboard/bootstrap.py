"""`orchestrator serve dashboard`: the web page over the read models, until SIGTERM."""

from __future__ import annotations

import asyncio
import sys

import psycopg
from aiohttp import web

from services.dashboard import database
from services.dashboard.app import make_app
from services.settings import Settings


def address(settings: Settings) -> str:
    host = settings.dashboard.host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.dashboard.port}/"


async def check_access(settings: Settings) -> dict:
    """Fail at start, with the reason, rather than on the first page view."""
    conn = await database.connect(settings)
    try:
        return await database.whoami(conn)
    finally:
        await conn.close()


def serve(settings: Settings) -> int:
    try:
        identity = asyncio.run(check_access(settings))
    except (database.AnalystRoleMissing, psycopg.OperationalError) as error:
        print(f"orchestrator: the dashboard cannot read the read models: {error}", file=sys.stderr)
        return 1
    print(
        f"dashboard on {address(settings)} reading as {identity['role']}"
        f"{' (read-only)' if identity['read_only'] else ''}{' over TLS' if identity['tls'] else ''}",
        flush=True,
    )
    web.run_app(
        make_app(settings),
        host=settings.dashboard.host,
        port=int(settings.dashboard.port),
        print=None,
        handle_signals=True,
    )
    return 0
