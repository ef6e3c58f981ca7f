"""The dashboard in a real headless Chromium, over read models the projector filled from Kafka.

Events go to the broker, the projector folds them, the audit projector chains them, `orchestrator
serve dashboard` reads them as the analyst role; the browser loads every page. Screenshots of
each page are left in .local/artifacts/dashboard/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from bench.demo.feed import scripted_feed
from events.envelope import make_event
from events.learning import SkillEstimated, SkillShiftDetected
from events.security import SecurityViolationDetected
from events.tasks import TaskQueued, TaskSubmitted
from events.values import CapabilityRequirement
from services import kafka
from services.audit.bootstrap import auditor_running, run_until
from services.audit.roles import Roles, apply_roles, drop_roles
from services.dashboard.charts import cell, plain
from services.settings import Settings
from tests.conftest import ROOT
from tests.e2e.helpers import fetch, publish_all, running_projector, wait_for, wait_until_projected
from tests.signing import enrolments

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / ".local" / "artifacts" / "dashboard"
RECENT = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
EARLIER = RECENT - timedelta(days=1)  # outside the 1 h range, inside `all`
KNOWN_TASK = "task-7-3"


def run_events() -> list:
    events = list(scripted_feed(agents=5, tasks=60, seed=6, start=EARLIER))
    events += [
        e for e in scripted_feed(agents=5, tasks=90, seed=7, start=RECENT) if e.event_type != "AgentRegistered"
    ]  # the same fleet, a day later
    at = RECENT + timedelta(seconds=5)
    for n in range(3):  # tasks nobody offers a capability for: they wait
        task = make_event(
            TaskSubmitted(
                task_id=f"vision-{n}", requirements=(CapabilityRequirement(name="vision"),), submitter="client-1"
            ),
            producer="client",
            occurred_at=at,
        )
        events += [
            task,
            make_event(
                TaskQueued(task_id=f"vision-{n}", reason="no registered agent offers vision", capability="vision"),
                producer="router",
                cause=task,
                occurred_at=at,
            ),
        ]
    for step in range(8):  # the learner's view of agent-1, with a shift half-way
        for capability, start in (("python", 0.5), ("sql", 0.7)):
            events.append(
                make_event(
                    SkillEstimated(
                        agent_id="agent-1",
                        capability=capability,
                        proficiency=min(1.0, start + 0.04 * step),
                        confidence=0.1 * step,
                        successes=step,
                        attempts=step + 1,
                        model_version="m1",
                    ),
                    producer="learner",
                    occurred_at=RECENT + timedelta(seconds=step),
                )
            )
    events.append(
        make_event(
            SkillShiftDetected(
                agent_id="agent-1", capability="python", direction="improved", before=0.55, after=0.66, attempts=4
            ),
            producer="learner",
            occurred_at=RECENT + timedelta(seconds=4),
        )
    )
    for n, kind in enumerate(("unsigned", "unsigned", "not_assignee")):
        events.append(
            make_event(
                SecurityViolationDetected(
                    agent_id="agent-2",
                    kind=kind,
                    reason=f"refused record {n}",
                    origin_topic="x.task-outcomes",
                    origin_partition=0,
                    origin_offset=n,
                    processor="projector",
                ),
                producer="projector",
                occurred_at=RECENT + timedelta(seconds=n),
            )
        )
    return events


@pytest.fixture
async def stack(settings, tmp_path):
    """The read models and the audit chain of a short run, and the roles over them; dropped afterwards."""
    tag = settings.db_schema.removeprefix("test_")
    s = settings.replace(
        db_role_prefix=f"t{tag}",
        audit_db_schema=f"audit_{tag}",
        keystore_schema=f"keystore_{tag}",
        db_analyst_password=uuid.uuid4().hex,
        audit_checkpoint_dir=str(tmp_path / "checkpoints"),
        audit_signing_key_file=str(tmp_path / "signing-key.pem"),
        audit_checkpoint_every_rows="200",
    )
    await kafka.ensure_topics(s)
    events = run_events()
    await publish_all(s, events)
    stop = asyncio.Event()
    async with running_projector(s), auditor_running(s, stop) as auditor:
        auditing = asyncio.create_task(run_until(auditor, stop))
        await wait_until_projected(s)
        await wait_for(
            lambda: _count(s, sql.Identifier(s.audit.db_schema, "audit_log"), len(events)), what="every record audited"
        )
        stop.set()
        await auditing
    await apply_roles(s)
    yield s
    roles = Roles.named(s.db_role_prefix)
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        for schema in (s.db_schema, s.audit.db_schema):
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        await drop_roles(conn, roles)


async def _count(settings, table, at_least: int) -> bool:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        return (await (await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table))).fetchone())[0] >= at_least


@pytest.fixture
def dashboard(stack, tmp_path):
    """`orchestrator serve dashboard` as its own process, with the admin's DATABASE_URL and the analyst's password."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": stack.database_url,
        "ORCHESTRATOR_DB_SCHEMA": stack.db_schema,
        "AUDIT_DB_SCHEMA": stack.audit.db_schema,
        "DB_ROLE_PREFIX": stack.db_role_prefix,
        "DB_ANALYST_PASSWORD": stack.db_analyst_password,
        "AUDIT_CHECKPOINT_DIR": stack.audit.checkpoint_dir,
        "AUDIT_SIGNING_KEY_FILE": stack.audit.signing_key_file,
        "DASHBOARD_PORT": str(port),
        "OFF_PATH_NICE": "0",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DASHBOARD_DATABASE_URL", None)
    output = tmp_path / "dashboard.log"
    with output.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "dashboard"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        address = f"http://127.0.0.1:{port}"
        asyncio.run(
            wait_for(
                lambda: process.poll() is not None or _answers(address), timeout=30, what="the dashboard to answer"
            )
        )
        assert process.poll() is None, output.read_text()
        assert output.read_text().startswith(f"dashboard on {address}/ reading as "), output.read_text()
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/whoami", timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture
def browser():
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    # The system's driver for the system's browser: nothing is downloaded.
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def until(browser, condition) -> None:
    """Wait for a condition on the page; an element replaced by a navigation under way is asked for again."""
    WebDriverWait(browser, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        condition
    )


def load(browser, url: str) -> None:
    """Open a page and wait until every chart on it has drawn."""
    browser.get(url)
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('div.chart')).every(c => c.dataset.drawn === 'true')"
        )
    )


def charts_on(browser) -> dict[str, list[dict]]:
    return browser.execute_script("""
        const found = {};
        document.querySelectorAll('div.chart').forEach(c => {
          found[c.id.replace('chart-', '')] = c.data.map(t => ({name: t.name, type: t.type, y: t.y, z: t.z}));
        });
        return found;""")


def drawn_marks(browser, key: str) -> int:
    """Marks Plotly drew in the chart's SVG: line paths, bars, heatmap images."""
    return browser.execute_script(f"""
        const marks = ['path.js-line', 'path.point', '.bars path', '.heatmaplayer image']
          .map(mark => 'svg.main-svg .cartesianlayer ' + mark).join(', ');
        return document.querySelectorAll('#chart-{key} ' + marks.replaceAll(', ', ', #chart-{key} ')).length;""")


def table(browser, key: str) -> tuple[list[str], list[list[str]]]:
    rows = browser.execute_script(f"""
        return Array.from(document.querySelectorAll('#table-{key} tr')).map(
          tr => Array.from(tr.cells).map(c => c.textContent.trim()));""")
    return rows[0], [r for r in rows[1:] if r != ["no rows"]]


def shown_sql(browser, key: str) -> str:
    return browser.execute_script(f"return document.querySelector('#sql-{key} pre').textContent;")


def screenshot(browser, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(max(height, 800), 8000))
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    browser.set_window_size(1400, 1000)


async def as_analyst(settings: Settings, query: str) -> list[dict]:
    """The statement the page shows, run by the test on a connection of its own, logged in as the analyst."""
    url = psycopg.conninfo.make_conninfo(
        settings.database_url, user=Roles.named(settings.db_role_prefix).analyst, password=settings.db_analyst_password
    )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SET TIME ZONE 'UTC'")
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query)
            return await cur.fetchall()


async def check_page(browser, settings: Settings, name: str, *, filtered: bool = False) -> dict[str, list[dict]]:
    """Every chart drew, its numbers are its table's, and every table is what its SQL returns.

    Unfiltered, the run fills every chart; a filter may leave one with nothing to draw."""
    charts = charts_on(browser)
    results = {}
    for section in browser.find_elements(By.CSS_SELECTOR, "section.panel[data-panel]"):
        key = section.get_attribute("data-panel")
        if not section.find_elements(By.CSS_SELECTOR, f"#sql-{key}"):
            continue  # a panel waiting for a filter
        rows = results[key] = await as_analyst(settings, shown_sql(browser, key))
        header, cells = table(browser, key)
        assert cells == [[cell(row[c]) for c in header] for row in rows], f"{name}/{key}: table differs from its SQL"
        if key in charts:
            assert rows or filtered, f"{name}/{key}: no rows to draw"
            assert (drawn_marks(browser, key) > 0) == bool(rows), f"{name}/{key}: the chart drew nothing"
            for trace in charts[key]:
                if trace["type"] == "heatmap":
                    shown = sorted(v for line in trace["z"] for v in line if v is not None)
                    assert shown == sorted(plain(r["success_rate"]) for r in rows if r["success_rate"] is not None)
                elif trace["name"] in header:
                    assert trace["y"] == [plain(r[trace["name"]]) for r in rows], f"{name}/{key}/{trace['name']}"
    screenshot(browser, name)
    return results


async def test_every_page_draws_the_read_models_as_the_analyst(stack, dashboard, browser):
    analyst = Roles.named(stack.db_role_prefix).analyst
    with urllib.request.urlopen(f"{dashboard}/whoami", timeout=10) as answer:
        assert answer.read().decode().count(f'"{analyst}"') == 2  # logged in as, and reading as, the analyst

    load(browser, f"{dashboard}/now?range=all")
    assert browser.find_element(By.ID, "identity").get_attribute("data-role") == analyst
    now = await check_page(browser, stack, "now")
    [total] = await fetch(stack, "SELECT count(*) AS n FROM tasks")
    assert sum(r["submitted"] for r in now["tasks_per_minute"]) == total["n"] == 153
    assert {r["capability"]: r["queued_now"] for r in now["queue_per_capability"]}["vision"] == 3

    # Filters change what is shown: a capability, then a shorter time range.
    Select(browser.find_element(By.ID, "filter-capability")).select_by_visible_text("python")
    browser.find_element(By.ID, "apply").click()
    WebDriverWait(browser, 20).until(lambda d: "capability=python" in d.current_url)
    load(browser, browser.current_url)
    python = await check_page(browser, stack, "now-python", filtered=True)
    [of_python] = await fetch(stack, "SELECT count(*) AS n FROM tasks WHERE requirements -> 0 ->> 'name' = 'python'")
    assert 0 < sum(r["submitted"] for r in python["tasks_per_minute"]) == of_python["n"] < total["n"]
    load(browser, f"{dashboard}/now?range=1h")
    recent = await check_page(browser, stack, "now-1h", filtered=True)
    assert sum(r["submitted"] for r in recent["tasks_per_minute"]) == total["n"] - 60  # the day before is out

    load(browser, f"{dashboard}/agents?range=all")
    assert browser.find_element(By.ID, "agent-shown").text == "agent-1"
    agents = await check_page(browser, stack, "agents")
    assert {r["capability"] for r in agents["skill_trajectory"]} == {"python", "sql"}
    assert [r["direction"] for r in agents["skill_shifts"]] == ["improved"]
    Select(browser.find_element(By.ID, "filter-agent")).select_by_visible_text("agent-2")
    browser.find_element(By.ID, "apply").click()
    until(browser, lambda d: d.find_element(By.ID, "agent-shown").text == "agent-2")
    load(browser, browser.current_url)
    other = await check_page(browser, stack, "agents-agent-2", filtered=True)
    declared = await fetch(stack, "SELECT name FROM agent_capabilities WHERE agent_id = 'agent-2' ORDER BY name")
    assert [r["capability"] for r in other["agent_capabilities"]] == [r["name"] for r in declared]

    load(browser, f"{dashboard}/capabilities?range=all")
    capabilities = await check_page(browser, stack, "capabilities")
    assert {r["capability"]: r["queued"] for r in capabilities["saturation_forecast"]}["vision"] == 3

    load(browser, f"{dashboard}/decisions?range=all&task={KNOWN_TASK}")
    decisions = await check_page(browser, stack, "decisions")
    [decision] = await fetch(
        stack, "SELECT candidates FROM routing_decisions WHERE task_id = %s ORDER BY decided_at LIMIT 1", (KNOWN_TASK,)
    )
    first = [r for r in decisions["decision_candidates"] if r["decision"] == 1]
    assert [r["agent_id"] for r in first] == [c["agent_id"] for c in decision["candidates"]]
    assert [r["probability"] for r in first] == [c["propensity"] for c in decision["candidates"]]
    header, cells = table(browser, "decision_candidates")
    assert {"features", "score", "predicted_success", "confidence", "probability", "reason"} <= set(header)
    assert [row[header.index("agent_id")] for row in cells][: len(first)] == [r["agent_id"] for r in first]
    assert decisions["task_attempts"] and decisions["task_outcome"][0]["task_id"] == KNOWN_TASK

    load(browser, f"{dashboard}/security?range=all")
    security = await check_page(browser, stack, "security")
    assert {r["kind"]: r["events"] for r in security["security_by_kind"]}["unsigned"] == 2

    browser.get(f"{dashboard}/audit")
    until(browser, lambda d: "verifying" not in d.find_element(By.ID, "audit-verdict").text)
    assert browser.find_element(By.ID, "audit-verdict").text.startswith("INTACT")
    load(browser, f"{dashboard}/audit")
    audit = await check_page(browser, stack, "audit")
    [audited] = await fetch(stack, f'SELECT count(*) AS n FROM "{stack.audit.db_schema}".audit_log')
    # every record of the run, and the key enrolments where identities are verified
    assert audit["audit_head"][0]["head_seq"] == audited["n"] == len(run_events()) + enrolments(stack)
    assert "no signed checkpoint yet" not in browser.find_element(By.ID, "table-checkpoints").text

    load(browser, f"{dashboard}/whatif")
    [runs] = await fetch(stack, f'SELECT count(*) AS n FROM "{stack.db_schema}".whatif_runs')
    assert runs["n"] == 0  # this run asked no what-if question: the page says so, and where runs go
    assert "orchestrator whatif" in browser.find_element(By.ID, "whatif-empty").text
    screenshot(browser, "whatif")
