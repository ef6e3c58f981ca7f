"""Retention of every topic and every read-model table, declared here, applied and reported.

Topics declare theirs in events/topics.py (TopicSpec.retention_ms, applied by `topics
ensure`); tables declare theirs below, next to the topic they are derived from. A table
derived from a source-of-truth topic is kept as long as that topic: forever. A table
derived from expiring telemetry is pruned at the telemetry's retention, which is also what
a rebuild by replay would hold, so pruning keeps the live tables equal to a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

from events.topics import FOREVER, TOPICS, TopicSpec, topic_name
from services import kafka
from services.settings import Settings

_TOPIC_RETENTION = {spec.name: spec.retention_ms for spec in TOPICS}
BOOKKEEPING_TABLES = ("schema_migrations",)  # the migrator's own record, not a read model


class RetentionUnavailable(RuntimeError):
    pass


@dataclass(frozen=True, kw_only=True)
class TableRetention:
    table: str
    derived_from: str  # logical topic name the rows come from
    time_column: str | None = None  # what a row's age is measured by
    retention_ms: int = FOREVER

    def __post_init__(self) -> None:
        if self.retention_ms != FOREVER and not self.time_column:
            raise ValueError(f"table {self.table} expires rows, so it needs a time column")


def _kept_like(topic: str, table: str, time_column: str | None = None) -> TableRetention:
    return TableRetention(
        table=table, derived_from=topic, time_column=time_column, retention_ms=_TOPIC_RETENTION[topic]
    )


TABLES: tuple[TableRetention, ...] = (
    _kept_like("agents", "agents", "updated_at"),
    _kept_like("agents", "agent_capabilities", "updated_at"),
    _kept_like("agents", "agent_capability_history", "occurred_at"),
    _kept_like("health", "agent_health_changes", "occurred_at"),
    _kept_like("agents", "agent_memory_profiles", "updated_at"),
    _kept_like("health", "agent_load_history", "window_end"),
    _kept_like("heartbeats", "agent_heartbeats_latest", "seen_at"),
    _kept_like("tasks", "tasks", "updated_at"),
    _kept_like("tasks", "routing_decisions", "decided_at"),
    _kept_like("tasks", "task_queue_events", "occurred_at"),
    _kept_like("assignments", "task_assignments", "assigned_at"),
    _kept_like("task-outcomes", "task_handoffs", "occurred_at"),
    # The dashboard's rollups count the rows of tasks and assignments: kept as long as those rows.
    _kept_like("tasks", "task_minutes", "minute"),
    _kept_like("tasks", "task_wait_hours", "hour"),
    _kept_like("tasks", "task_wait_days", "day"),
    _kept_like("assignments", "assignment_minutes", "minute"),
    _kept_like("assignments", "assignment_hours", "hour"),
    _kept_like("skills", "skill_estimates", "estimated_at"),
    _kept_like("skills", "skill_trajectory", "estimated_at"),
    _kept_like("skills", "skill_shifts", "detected_at"),
    _kept_like("skills", "agent_relationships", "scored_at"),
    _kept_like("models", "model_versions", "published_at"),
    _kept_like("privacy", "erasures", "erased_at"),
    # Agent identity's record of enrolments and rejected records: evidence, kept like the log.
    TableRetention(table="security_events", derived_from="security", time_column="occurred_at"),
    # What-if runs over the decision log (routings, assignments, outcomes): analysis kept like the log.
    TableRetention(table="whatif_runs", derived_from="tasks", time_column="ran_at"),
    # Positions of every topic: as long as the log it tracks.
    TableRetention(table="projection_positions", derived_from="*"),
)


# --- pure: what is declared, what is due, how far actual is from declared -------------


def retention_text(retention_ms: int | None) -> str:
    if retention_ms is None:
        return "-"
    if retention_ms == FOREVER:
        return "forever"
    hours = retention_ms / 3_600_000
    return f"{hours / 24:g}d" if hours >= 24 and hours % 24 == 0 else f"{hours:g}h"


def prune_cutoffs(tables: tuple[TableRetention, ...], now: datetime) -> list[tuple[TableRetention, datetime]]:
    """Each table that expires rows, with the time before which its rows are due."""
    return [(t, now - timedelta(milliseconds=t.retention_ms)) for t in tables if t.retention_ms != FOREVER]


def topic_row(spec: TopicSpec, prefix: str, actual: dict[str, str] | None) -> dict:
    declared = spec.retention_ms
    if actual is None:
        status, actual_ms = "missing", None
    else:
        actual_ms = int(actual["retention.ms"]) if "retention.ms" in actual else None
        status = "ok" if actual_ms == declared and actual.get("cleanup.policy") == spec.cleanup_policy else "drift"
    return {
        "kind": "topic",
        "name": topic_name(spec, prefix),
        "declared_retention_ms": declared,
        "actual_retention_ms": actual_ms,
        "status": status,
        "detail": "" if status == "ok" else _topic_detail(status, spec),
    }


def _topic_detail(status: str, spec: TopicSpec) -> str:
    if status == "missing":
        return "not on the broker: `orchestrator topics ensure` creates it"
    return (
        f"broker differs from retention.ms={spec.retention_ms}, cleanup.policy={spec.cleanup_policy}: "
        "`orchestrator topics ensure` applies the catalog"
    )


def table_row(
    name: str, declared: TableRetention | None, *, rows: int | None, oldest: datetime | None, now: datetime
) -> dict:
    age_ms = int((now - oldest).total_seconds() * 1000) if oldest else None
    if declared is None:
        status, detail = "undeclared", "no retention declared in services/privacy/retention.py"
    elif rows is None:
        status, detail = "missing", "declared but not in the schema (the projector creates it at start)"
    elif declared.retention_ms != FOREVER and age_ms is not None and age_ms > declared.retention_ms:
        status, detail = "overdue", "rows older than declared: `orchestrator retention apply` prunes them"
    else:
        status, detail = "ok", ""
    return {
        "kind": "table",
        "name": name,
        "declared_retention_ms": None if declared is None else declared.retention_ms,
        "derived_from": None if declared is None else declared.derived_from,
        "rows": rows,
        "oldest_row_age_ms": age_ms,
        "status": status,
        "detail": detail,
    }


def table_rows(
    existing: dict[str, tuple[int, datetime | None]], now: datetime, tables: tuple[TableRetention, ...] = TABLES
) -> list[dict]:
    """Every declared table and every table of the schema, declared vs actual."""
    declared = {t.table: t for t in tables}
    names = sorted(set(declared) | set(existing))
    return [
        table_row(
            n, declared.get(n), rows=existing.get(n, (None, None))[0], oldest=existing.get(n, (None, None))[1], now=now
        )
        for n in names
    ]


# --- shells: the broker and the database ----------------------------------------------


async def retention_report(settings: Settings, now: datetime | None = None) -> list[dict]:
    """Declared vs actual retention of every topic (from the broker) and every table, as plain data."""
    now = now or datetime.now(timezone.utc)
    configs = await _broker_topic_configs(settings)
    topics = [
        topic_row(spec, settings.topic_prefix, configs.get(topic_name(spec, settings.topic_prefix))) for spec in TOPICS
    ]
    async with await _connect(settings) as conn:
        existing = await _table_ages(conn, settings.db_schema)
    return topics + table_rows(existing, now)


async def apply_retention(settings: Settings, now: datetime | None = None, dry_run: bool = False) -> list[dict]:
    """Delete table rows past their declared retention; one row per expiring table, with what was
    (or would be) pruned."""
    now = now or datetime.now(timezone.utc)
    done = []
    async with await _connect(settings) as conn:
        for table, cutoff in prune_cutoffs(TABLES, now):
            target = sql.SQL("{}.{}").format(sql.Identifier(settings.db_schema), sql.Identifier(table.table))
            verb = (
                "SELECT count(*) FROM {} WHERE {} < %s"
                if dry_run
                else "WITH gone AS (DELETE FROM {} WHERE {} < %s RETURNING 1) SELECT count(*) FROM gone"
            )
            cur = await conn.execute(sql.SQL(verb).format(target, sql.Identifier(table.time_column)), (cutoff,))
            done.append(
                {
                    "table": table.table,
                    "cutoff": cutoff.isoformat(),
                    "pruned": (await cur.fetchone())[0],
                    "dry_run": dry_run,
                }
            )
    return done


async def _connect(settings: Settings) -> psycopg.AsyncConnection:
    try:
        return await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    except psycopg.OperationalError as error:
        raise RetentionUnavailable(f"cannot reach PostgreSQL at DATABASE_URL ({error})") from error


async def _table_ages(conn: psycopg.AsyncConnection, schema: str) -> dict[str, tuple[int, datetime | None]]:
    cur = await conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
        (schema,),
    )
    names = [row[0] for row in await cur.fetchall() if row[0] not in BOOKKEEPING_TABLES]
    columns = {t.table: t.time_column for t in TABLES}
    ages = {}
    for name in names:
        table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        oldest = sql.SQL("min({})").format(sql.Identifier(columns[name])) if columns.get(name) else sql.SQL("NULL")
        cur = await conn.execute(sql.SQL("SELECT count(*), {} FROM {}").format(oldest, table))
        ages[name] = tuple(await cur.fetchone())
    return ages


async def _broker_topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings, "the Kafka admin API")
    try:
        present = set(await admin.list_topics())
        wanted = [topic_name(spec, settings.topic_prefix) for spec in TOPICS]
        names = [n for n in wanted if n in present]
        return await kafka._topic_configs(admin, names) if names else {}  # noqa: SLF001 - the one reader of topic configs
    finally:
        await admin.close()
