"""The dashboard's web application (aiohttp): one handler per page, the assets, the audit verifier."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import orjson
import psycopg
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from services.audit import checkpoints
from services.audit.verify import AuditLogMissing, Verdict, verify
from services.dashboard import charts, database
from services.dashboard.queries import (
    AGENT_CHOICES,
    CAPABILITY_CHOICES,
    NEWEST,
    PAGES,
    PANELS,
    RANGES,
    WHATIF_TABLE,
    BadFilter,
    Filters,
    parameters,
)
from services.settings import Settings

log = logging.getLogger(__name__)
PLOTLY_JS = files("plotly") / "package_data" / "plotly.min.js"
STATIC = files("services.dashboard") / "static"
LATEST_CHECKPOINTS = 10


@dataclass
class AuditState:
    verdict: Verdict | None = None
    error: str | None = None
    checked_at: float | None = None
    seconds: float | None = None
    checkpoints: list[dict] = field(default_factory=list)


SETTINGS = web.AppKey("settings", Settings)
AUDIT = web.AppKey("audit", AuditState)
TEMPLATES = web.AppKey("templates", Environment)


def make_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[AUDIT] = AuditState()
    app[TEMPLATES] = Environment(
        loader=PackageLoader("services.dashboard", "templates"), autoescape=select_autoescape(["html"])
    )
    app.router.add_get("/", home)
    app.router.add_get("/static/plotly.min.js", plotly_js)
    app.router.add_get("/static/{name:[a-z]+\\.(js|css)}", static_file)
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/{page}", page_view)
    app.cleanup_ctx.append(audit_verifier)
    return app


async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/now")


async def plotly_js(request: web.Request) -> web.FileResponse:
    # Plotly's own build, from the plotly package: the page needs no network to draw.
    return web.FileResponse(Path(str(PLOTLY_JS)), headers={"Cache-Control": "max-age=86400"})


async def static_file(request: web.Request) -> web.StreamResponse:
    path = STATIC / request.match_info["name"]
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(Path(str(path)))


async def whoami(request: web.Request) -> web.Response:
    conn = await database.connect(request.app[SETTINGS])
    try:
        return web.json_response(await database.whoami(conn))
    finally:
        await conn.close()


async def page_view(request: web.Request) -> web.Response:
    page = PAGES.get(request.match_info["page"])
    if page is None:
        raise web.HTTPNotFound(text=f"no page {request.match_info['page']!r}; pages: {', '.join(PAGES)}")
    try:
        filters = Filters.from_query(request.query)
    except BadFilter as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    settings = request.app[SETTINGS]
    conn = await database.connect(settings)
    try:
        context = await page_context(conn, settings, page.key, filters)
        context["identity"] = await database.whoami(conn)
    finally:
        await conn.close()
    if page.key == "audit":
        context["audit"] = request.app[AUDIT]
    template = request.app[TEMPLATES].get_template("page.html")
    html = template.render(page=page, pages=PAGES, filters=filters, ranges=list(RANGES), **context)
    return web.Response(text=html, content_type="text/html")


async def page_context(conn, settings: Settings, page: str, filters: Filters) -> dict:
    _, [newest_row] = await database.run(conn, NEWEST, {})
    newest = newest_row["newest"]
    _, agents = await database.run(conn, AGENT_CHOICES, {})
    _, capabilities = await database.run(conn, CAPABILITY_CHOICES, {})
    agent = filters.agent
    if page == "agents" and agent is None and agents:
        agent = agents[0]["agent_id"]  # the page is about one agent: the first until another is picked
    params = parameters(filters, newest, agent=agent)
    shown, results = [], {}
    for key in PAGES[page].panels:
        panel = PANELS[key]
        missing = [name for name in panel.needs if params.get(name) is None]
        if missing:
            shown.append({"panel": panel, "missing": missing})
            continue
        text, rows = await database.run(conn, database.statement(panel, settings, filters), params)
        results[key] = rows
        shown.append({"panel": panel, "sql": text, "rows": rows, "columns": _columns(rows)})
    for item in shown:
        chart = item["panel"].chart
        if chart is not None and "rows" in item:
            marks = results.get(chart.marks, []) if chart.marks else []
            item["figure"] = _script_json(charts.figure(chart, item["rows"], marks))
    context = {
        "panels": shown,
        "newest": newest,
        "agent": agent,
        "cell": charts.cell,
        "table_body": charts.table_body,
        "agents": [a["agent_id"] for a in agents],
        "capabilities": [c["name"] for c in capabilities],
    }
    if page == "whatif":
        context["whatif"] = await whatif(conn, settings)
    return context


async def whatif(conn, settings: Settings) -> dict:
    table = f'"{settings.db_schema}".whatif_runs'
    _, [found] = await database.run(conn, WHATIF_TABLE, {"table": table})
    if not found["present"]:
        return {"present": False, "table": table}
    text, rows = await database.run(conn, "SELECT * FROM whatif_runs ORDER BY 1 DESC LIMIT 50", {})
    return {"present": True, "table": table, "sql": text, "rows": rows, "columns": _columns(rows)}


def _columns(rows: list[dict]) -> list[str]:
    return list(rows[0]) if rows else []


def _script_json(value) -> str:
    # Inside <script>, "</" would end the element: JSON allows "<" escaped, HTML then leaves it alone.
    return orjson.dumps(value, default=charts.plain).decode().replace("<", "\\u003c")


async def audit_verifier(app: web.Application):
    """Walk the audit chain now and then: a walk reads every row, far too slow to do per page view."""
    task = asyncio.create_task(_verify_forever(app[SETTINGS], app[AUDIT]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _verify_forever(settings: Settings, state: AuditState) -> None:
    while True:
        started = time.monotonic()
        try:
            conn = await database.connect(settings)
            try:
                state.verdict, state.error = await verify(settings, conn=conn), None
            finally:
                await conn.close()
        except (AuditLogMissing, FileNotFoundError, psycopg.Error, database.AnalystRoleMissing) as error:
            state.verdict, state.error = None, str(error)
        state.checkpoints = latest_checkpoints(settings)
        state.checked_at, state.seconds = time.time(), time.monotonic() - started
        await asyncio.sleep(float(settings.dashboard.audit_verify_interval_s))


def latest_checkpoints(settings: Settings) -> list[dict]:
    directory = Path(settings.audit.checkpoint_dir)
    found = checkpoints.read_all(directory, settings.audit.db_schema) if directory.exists() else []
    readable = [(name, c) for name, c in found if c is not None]
    readable.sort(key=lambda item: item[1].last_seq, reverse=True)
    return [
        {"file": name, "time": c.time, "last_seq": c.last_seq, "count": c.count, "last_position": c.last_position}
        for name, c in readable[:LATEST_CHECKPOINTS]
    ]
