"""The SQL behind every panel of the dashboard, and the filters it takes: pure, no connection.

Each query reads a table that grows with the tasks through an index (tests/integration/
test_query_plans.py checks the plans), and is bounded by the time range where it can be: the
page must stay quick on read models holding a million tasks. Filters left empty are NULL, and
`%(x)s::text IS NULL OR ...` folds away when the statement is planned with its values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping, get_args
from urllib.parse import urlencode

from events.security import ViolationKind
from projections.rollups import FAILED, wait_key

RANGES = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "all": None,
}
DEFAULT_RANGE = "1h"
# Wider ranges than this read the rollups (migration 0012) where a panel has them.
ROLLUP_ABOVE = timedelta(days=1)
SECURITY_KINDS = ("key_enrolled", "key_revoked", *get_args(ViolationKind))
_NAME = re.compile(r"^[A-Za-z0-9._:@/+-]{1,200}$")


class BadFilter(ValueError):
    pass


@dataclass(frozen=True)
class Filters:
    range: str = DEFAULT_RANGE
    capability: str | None = None
    agent: str | None = None
    task: str | None = None
    live: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> "Filters":
        chosen = query.get("range") or DEFAULT_RANGE
        if chosen not in RANGES:
            raise BadFilter(f"range must be one of {', '.join(RANGES)}, got {chosen!r}")
        values = {}
        for name in ("capability", "agent", "task"):
            value = (query.get(name) or "").strip()
            if value and not _NAME.match(value):
                raise BadFilter(f"{name} may hold letters, digits and . _ : @ / + - (at most 200), got {value!r}")
            values[name] = value or None
        return cls(range=chosen, live=query.get("live") in ("1", "on", "true"), **values)

    def query_string(self, **changes) -> str:
        """The URL query of these filters with `changes`, for links that keep the rest."""
        values = {
            "range": self.range,
            "capability": self.capability,
            "agent": self.agent,
            "task": self.task,
            "live": "1" if self.live else None,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v})


def window(filters: Filters, newest: datetime | None) -> tuple[datetime | str, datetime | str]:
    """(since, until) of the time range, counted back from the newest task submitted.

    The read models hold what happened, not what time it is now: anchoring on the newest task
    shows a replayed or finished run as well as a live one.
    """
    span = RANGES[filters.range]
    if newest is None or span is None:
        return "-infinity", "infinity"
    return newest - span, newest


def parameters(filters: Filters, newest: datetime | None, agent: str | None = None) -> dict:
    since, until = window(filters, newest)
    return {
        "since": since,
        "until": until,
        "capability": filters.capability,
        "agent": agent or filters.agent,
        "task": filters.task,
        "kinds": list(SECURITY_KINDS),
    }


@dataclass(frozen=True)
class Chart:
    kind: str  # line | bar | heatmap | band
    x: str
    y: tuple[str, ...] = ()
    series: str | None = None  # one trace per value of this column
    z: str | None = None  # heatmap cell value
    low: str | None = None  # band: its lower and upper edge
    high: str | None = None
    marks: str | None = None  # band: key of a panel whose rows are marked on the chart
    y_title: str = ""


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    sql: str
    chart: Chart | None = None
    needs: tuple[str, ...] = ()  # parameters without which the panel is not shown
    note: str = ""
    links: dict[str, str] = field(default_factory=dict)  # column -> filter it sets when clicked
    table_open: bool = False  # the table is what one came for, not the chart
    # The same from the rollups, for ranges wider than ROLLUP_ABOVE; with an agent picked only if
    # the rollup has the agent.
    rollup_sql: str = ""
    rollup_has_agent: bool = False

    def sql_for(self, filters: Filters) -> str:
        span = RANGES[filters.range]
        wide = span is None or span > ROLLUP_ABOVE
        if self.rollup_sql and wide and (filters.agent is None or self.rollup_has_agent):
            return self.rollup_sql
        return self.sql


_IN_RANGE = "{column} >= %(since)s AND {column} <= %(until)s"
_TASK_CAPABILITY = "(%(capability)s::text IS NULL OR requirements -> 0 ->> 'name' = %(capability)s)"


def _tasks_in_range() -> str:
    return (
        f"WHERE {_IN_RANGE.format(column='submitted_at')} AND {_TASK_CAPABILITY}"
        " AND (%(agent)s::text IS NULL OR assigned_agent_id = %(agent)s)"
    )


_ASSIGNMENTS_IN_RANGE = (
    f"WHERE {_IN_RANGE.format(column='assigned_at')}"
    " AND (%(capability)s::text IS NULL OR capability = %(capability)s)"
    " AND (%(agent)s::text IS NULL OR agent_id = %(agent)s)"
)


# Each bound a sub-select, computed once: as a plain expression it is computed again for every row.
def _first_whole(unit: str) -> str:
    """The start of the first minute or hour wholly inside the range."""
    return (
        f"(SELECT date_trunc('{unit}', %(since)s::timestamptz - interval '1 microsecond', 'UTC') + interval '1 {unit}')"
    )


def _past_whole(unit: str) -> str:
    """The end of the last minute or hour wholly inside the range (the newest task is in the next one)."""
    return f"(SELECT date_trunc('{unit}', %(until)s::timestamptz, 'UTC'))"


def _whole(unit: str, column: str) -> str:
    """`column` (a rollup's minute or hour) among the units wholly inside the range."""
    return f"{column} >= {_first_whole(unit)} AND {column} < {_past_whole(unit)}"


def _cut(unit: str, column: str) -> str:
    """`column` (a row's time) in the range, in a unit the range cuts at either end: two index ranges."""
    return (
        f"(({column} >= %(since)s AND {column} < {_first_whole(unit)} AND {column} <= %(until)s)"
        f"\n    OR ({column} >= greatest({_past_whole(unit)}, {_first_whole(unit)}) AND {column} <= %(until)s))"
    )


_CAPABILITY = "(%(capability)s::text IS NULL OR capability = %(capability)s)"
_AGENT = "(%(agent)s::text IS NULL OR agent_id = %(agent)s)"
_WAIT = """JOIN LATERAL (SELECT extract(epoch FROM min(a.assigned_at) - t.submitted_at) * 1000.0 AS wait_ms
              FROM task_assignments a WHERE a.task_id = t.task_id) w ON w.wait_ms IS NOT NULL"""

NEWEST = "SELECT max(submitted_at) AS newest FROM tasks"
CAPABILITY_CHOICES = "SELECT DISTINCT name FROM agent_capabilities ORDER BY name"
AGENT_CHOICES = "SELECT agent_id FROM agents ORDER BY agent_id"
WHATIF_TABLE = "SELECT to_regclass(%(table)s) IS NOT NULL AS present"

PANELS: dict[str, Panel] = {
    p.key: p
    for p in (
        # --- now ---
        Panel(
            "tasks_per_minute",
            "Tasks per minute",
            f"""
SELECT date_trunc('minute', submitted_at) AS minute, count(*) AS submitted,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status IN ('failed', 'rejected', 'timed_out', 'expired')) AS failed
FROM tasks
{_tasks_in_range()}
GROUP BY 1 ORDER BY 1""",
            Chart("line", "minute", ("submitted", "completed", "failed"), y_title="tasks"),
            rollup_sql=f"""
SELECT minute, sum(submitted)::bigint AS submitted, sum(completed)::bigint AS completed,
       sum(failed)::bigint AS failed
FROM (
    -- Whole minutes from the rollup of tasks per minute, the minutes the range cuts from the tasks.
    SELECT minute, submitted, completed, failed FROM task_minutes
    WHERE {_whole("minute", "minute")} AND {_CAPABILITY}
    UNION ALL
    SELECT date_trunc('minute', submitted_at, 'UTC'), 1, (status = 'completed')::int, (status IN {FAILED})::int
    FROM tasks
    WHERE {_cut("minute", "submitted_at")} AND {_TASK_CAPABILITY}
) m
GROUP BY 1 ORDER BY 1""",
        ),
        Panel(
            "success_per_minute",
            "Success rate per minute (attempts by assignment time)",
            f"""
SELECT date_trunc('minute', assigned_at) AS minute, count(*) FILTER (WHERE success IS NOT NULL) AS finished,
       round(avg(success::int)::numeric, 3)::float8 AS success_rate
FROM task_assignments
{_ASSIGNMENTS_IN_RANGE}
GROUP BY 1 ORDER BY 1""",
            Chart("line", "minute", ("success_rate",), y_title="success rate"),
            rollup_sql=f"""
SELECT minute, sum(finished)::bigint AS finished,
       round(sum(succeeded)::numeric / nullif(sum(finished), 0), 3)::float8 AS success_rate
FROM (
    -- Whole minutes from the rollup of attempts per minute, the minutes the range cuts from the attempts.
    SELECT minute, finished, succeeded FROM assignment_minutes
    WHERE {_whole("minute", "minute")} AND {_CAPABILITY}
    UNION ALL
    SELECT date_trunc('minute', assigned_at, 'UTC'), (success IS NOT NULL)::int, (success IS TRUE)::int
    FROM task_assignments
    WHERE {_cut("minute", "assigned_at")} AND {_CAPABILITY}
) m
GROUP BY 1 ORDER BY 1""",
        ),
        Panel(
            "queue_per_capability",
            "Queue length per capability (tasks waiting now)",
            """
SELECT requirements -> 0 ->> 'name' AS capability, count(*) AS queued_now
FROM tasks
WHERE status = 'queued' AND """
            + _TASK_CAPABILITY
            + """
GROUP BY 1 ORDER BY 1""",
            Chart("bar", "capability", ("queued_now",), y_title="tasks"),
        ),
        Panel(
            "wait_per_capability",
            "Wait from submission to first assignment, per capability",
            f"""
SELECT t.requirements -> 0 ->> 'name' AS capability, count(*) AS assigned,
       round(avg(w.wait_ms)::numeric, 1)::float8 AS mean_wait_ms,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY w.wait_ms))::numeric, 1)::float8 AS p95_wait_ms
FROM tasks t
-- One primary-key lookup per task in range: a plain join would be hashed over the whole
-- assignments table (130 ms against 30 ms for the last hour of a million tasks).
JOIN LATERAL (SELECT extract(epoch FROM min(a.assigned_at) - t.submitted_at) * 1000.0 AS wait_ms
              FROM task_assignments a WHERE a.task_id = t.task_id) w ON w.wait_ms IS NOT NULL
{_tasks_in_range()}
GROUP BY 1 ORDER BY 1""",
            Chart("bar", "capability", ("mean_wait_ms", "p95_wait_ms"), y_title="ms"),
            note="Over a day, the 95th percentile is that of the waits to three significant figures (within 0.5 "
            "per cent): the rollup holds a histogram of them.",
            rollup_sql=f"""
WITH waits AS (
    -- Whole days, then whole hours of the days the range cuts, from the rollups, histograms of waits
    -- to three significant figures; the hours the range cuts from the tasks, rounded the same way.
    SELECT capability, wait_ms, tasks, total_wait_ms FROM task_wait_days
    WHERE {_whole("day", "day")} AND {_CAPABILITY}
    UNION ALL
    SELECT capability, wait_ms, tasks, total_wait_ms FROM task_wait_hours
    WHERE {_whole("hour", "hour")} AND (hour < {_first_whole("day")} OR hour >= {_past_whole("day")})
      AND {_CAPABILITY}
    UNION ALL
    SELECT t.requirements -> 0 ->> 'name', {wait_key("w.wait_ms")}, 1, w.wait_ms
    FROM tasks t
    {_WAIT}
    WHERE {_cut("hour", "t.submitted_at")} AND {_TASK_CAPABILITY}
), histogram AS (
    SELECT capability, wait_ms, sum(tasks) AS tasks, sum(total_wait_ms) AS total_wait_ms,
           sum(sum(tasks)) OVER (PARTITION BY capability ORDER BY wait_ms) AS up_to
    FROM waits GROUP BY 1, 2
), per_capability AS (
    SELECT capability, sum(tasks) AS tasks, sum(total_wait_ms) AS total_wait_ms,
           0.95::float8 * (sum(tasks) - 1)::float8 AS p95_at  -- where percentile_cont(0.95) reads
    FROM histogram GROUP BY 1
)
SELECT c.capability, c.tasks::bigint AS assigned, round(c.total_wait_ms / c.tasks, 1)::float8 AS mean_wait_ms,
       round((lo.wait_ms::float8 + (c.p95_at - floor(c.p95_at)) * (hi.wait_ms::float8 - lo.wait_ms::float8))::numeric,
             1)::float8 AS p95_wait_ms
FROM per_capability c
CROSS JOIN LATERAL (SELECT wait_ms FROM histogram h WHERE h.capability IS NOT DISTINCT FROM c.capability
                    AND h.up_to > floor(c.p95_at) ORDER BY h.wait_ms LIMIT 1) lo
CROSS JOIN LATERAL (SELECT wait_ms FROM histogram h WHERE h.capability IS NOT DISTINCT FROM c.capability
                    AND h.up_to > ceil(c.p95_at) ORDER BY h.wait_ms LIMIT 1) hi
ORDER BY 1""",
        ),
        Panel(
            "agents_by_health",
            "Agents by health",
            """
SELECT coalesce(health, 'unknown') AS health, count(*) AS agents
FROM agents
WHERE status IS DISTINCT FROM 'deregistered' AND (%(agent)s::text IS NULL OR agent_id = %(agent)s)
GROUP BY 1 ORDER BY 1""",
            Chart("bar", "health", ("agents",), y_title="agents"),
        ),
        Panel(
            "agents_load",
            "Load against capacity (tasks assigned or started now)",
            """
SELECT a.agent_id, coalesce(a.health, 'unknown') AS health, a.capacity, coalesce(f.in_flight, 0) AS in_flight
FROM agents a
LEFT JOIN (SELECT assigned_agent_id AS agent_id, count(*) AS in_flight FROM tasks
           WHERE status IN ('assigned', 'started') GROUP BY 1) f USING (agent_id)
WHERE a.status IS DISTINCT FROM 'deregistered' AND (%(agent)s::text IS NULL OR a.agent_id = %(agent)s)
  AND (%(capability)s::text IS NULL OR EXISTS (
       SELECT FROM agent_capabilities c WHERE c.agent_id = a.agent_id AND c.name = %(capability)s))
ORDER BY a.agent_id""",
            Chart("bar", "agent_id", ("in_flight", "capacity"), y_title="tasks"),
            links={"agent_id": "agent"},
        ),
        # --- agents ---
        Panel(
            "agent_capabilities",
            "Capabilities: declared and estimated proficiency",
            """
SELECT c.name AS capability, c.proficiency AS declared, e.proficiency AS estimated, e.confidence,
       e.successes, e.attempts, e.estimated_at
FROM agent_capabilities c
LEFT JOIN skill_estimates e ON e.agent_id = c.agent_id AND e.capability = c.name
WHERE c.agent_id = %(agent)s AND (%(capability)s::text IS NULL OR c.name = %(capability)s)
ORDER BY 1""",
            Chart("bar", "capability", ("declared", "estimated"), y_title="proficiency"),
            needs=("agent",),
        ),
        Panel(
            "skill_trajectory",
            "Skill trajectory per capability, with its band and detected shifts",
            f"""
SELECT capability, estimated_at, proficiency, confidence, attempts,
       greatest(0, proficiency - 1.96 * sqrt(proficiency * (1 - proficiency) / (attempts + 2))) AS low,
       least(1, proficiency + 1.96 * sqrt(proficiency * (1 - proficiency) / (attempts + 2))) AS high
FROM skill_trajectory
WHERE agent_id = %(agent)s AND {_IN_RANGE.format(column="estimated_at")}
  AND (%(capability)s::text IS NULL OR capability = %(capability)s)
ORDER BY capability, estimated_at, event_id""",
            Chart(
                "band",
                "estimated_at",
                ("proficiency",),
                series="capability",
                low="low",
                high="high",
                marks="skill_shifts",
                y_title="proficiency",
            ),
            needs=("agent",),
            note="Band: 1.96 standard errors of a success rate over the attempts behind each estimate.",
        ),
        Panel(
            "skill_shifts",
            "Detected shifts",
            f"""
SELECT capability, detected_at, direction, before, after, attempts
FROM skill_shifts
WHERE agent_id = %(agent)s AND {_IN_RANGE.format(column="detected_at")}
  AND (%(capability)s::text IS NULL OR capability = %(capability)s)
ORDER BY detected_at, event_id""",
            needs=("agent",),
        ),
        Panel(
            "skill_forecast",
            "Forecast: where each skill leads in 20 more attempts",
            """
SELECT capability, proficiency, slope_per_attempt, forecast_in_20_attempts, attempts, estimates
FROM skill_trends
WHERE agent_id = %(agent)s AND (%(capability)s::text IS NULL OR capability = %(capability)s)
ORDER BY capability""",
            Chart("bar", "capability", ("proficiency", "forecast_in_20_attempts"), y_title="proficiency"),
            needs=("agent",),
        ),
        # --- capabilities ---
        Panel(
            "success_heatmap",
            "Success rate by agent and capability",
            f"""
SELECT agent_id, capability, count(*) FILTER (WHERE success IS NOT NULL) AS finished,
       round(avg(success::int)::numeric, 3)::float8 AS success_rate
FROM task_assignments
{_ASSIGNMENTS_IN_RANGE} AND agent_id IS NOT NULL AND capability IS NOT NULL
GROUP BY 1, 2 ORDER BY 1, 2""",
            Chart("heatmap", "capability", (), series="agent_id", z="success_rate"),
            links={"agent_id": "agent"},
            rollup_sql=f"""
SELECT agent_id, capability, sum(finished)::bigint AS finished,
       round(sum(succeeded)::numeric / nullif(sum(finished), 0), 3)::float8 AS success_rate
FROM (
    -- Whole hours from the rollup of attempts per hour, the hours the range cuts from the attempts.
    SELECT agent_id, capability, finished, succeeded FROM assignment_hours
    WHERE {_whole("hour", "hour")} AND {_CAPABILITY} AND {_AGENT}
    UNION ALL
    SELECT agent_id, capability, (success IS NOT NULL)::int, (success IS TRUE)::int
    FROM task_assignments
    WHERE {_cut("hour", "assigned_at")} AND {_CAPABILITY} AND {_AGENT}
      AND agent_id IS NOT NULL AND capability IS NOT NULL
) h
GROUP BY 1, 2 ORDER BY 1, 2""",
            rollup_has_agent=True,
        ),
        # The capabilities queued for are found by walking the (capability, occurred_at) index one
        # value at a time: a capability nobody offers is the one most likely to saturate.
        Panel(
            "saturation_forecast",
            "Saturation forecast: queueing per minute and its trend, 15 minutes on",
            f"""
WITH RECURSIVE queued_for AS (
    (SELECT capability FROM task_queue_events WHERE capability IS NOT NULL ORDER BY capability LIMIT 1)
    UNION ALL
    SELECT (SELECT e.capability FROM task_queue_events e WHERE e.capability > q.capability
            ORDER BY e.capability LIMIT 1)
    FROM queued_for q WHERE q.capability IS NOT NULL
), capabilities AS (
    SELECT capability FROM queued_for WHERE capability IS NOT NULL
    UNION SELECT name FROM agent_capabilities
)
SELECT c.capability, q.minutes, q.queued,
       round(q.mean_per_minute::numeric, 3)::float8 AS mean_queued_per_minute,
       round(q.trend::numeric, 3)::float8 AS queued_trend_per_minute,
       round(greatest(0, q.mean_per_minute + q.trend * 15)::numeric, 3)::float8 AS queued_per_minute_in_15_min
FROM capabilities c
CROSS JOIN LATERAL (
    SELECT count(*) AS minutes, coalesce(sum(n), 0) AS queued, coalesce(avg(n), 0) AS mean_per_minute,
           coalesce(regr_slope(n, m), 0) AS trend
    FROM (SELECT extract(epoch FROM date_trunc('minute', occurred_at)) / 60.0 AS m, count(*) AS n
          FROM task_queue_events
          WHERE capability = c.capability AND {_IN_RANGE.format(column="occurred_at")}
          GROUP BY 1) per_minute
) q
WHERE %(capability)s::text IS NULL OR c.capability = %(capability)s
ORDER BY c.capability""",
            Chart(
                "bar",
                "capability",
                ("mean_queued_per_minute", "queued_per_minute_in_15_min"),
                y_title="tasks queued per minute",
            ),
        ),
        Panel(
            "recommendations",
            "Recommendations",
            """
SELECT action, capability, agent_id, reason, since
FROM recommendations
WHERE (%(capability)s::text IS NULL OR capability = %(capability)s)
  AND (%(agent)s::text IS NULL OR agent_id = %(agent)s)
ORDER BY action, capability, agent_id""",
            links={"agent_id": "agent"},
        ),
        # --- decisions ---
        Panel(
            "recent_tasks",
            "Latest tasks in range (pick one to see its decision)",
            f"""
SELECT task_id, status, attempt, assigned_agent_id, requirements -> 0 ->> 'name' AS capability, submitted_at
FROM tasks
{_tasks_in_range()}
ORDER BY submitted_at DESC, task_id LIMIT 25""",
            links={"task_id": "task"},
        ),
        Panel(
            "decision_candidates",
            "Every candidate of the task's routing decisions",
            """
SELECT d.decision, d.decided_at, c.rank, c.value ->> 'agent_id' AS agent_id,
       (c.value ->> 'agent_id') = d.chosen_agent_id AS chosen,
       'decision ' || d.decision || ': ' || (c.value ->> 'agent_id') AS candidate,
       (c.value ->> 'score')::float8 AS score,
       (c.value ->> 'predicted_success')::float8 AS predicted_success,
       (c.value ->> 'confidence')::float8 AS confidence,
       (c.value ->> 'propensity')::float8 AS probability,
       c.value -> 'features' AS features, d.policy, d.model_version, d.reason
FROM (SELECT *, row_number() OVER (ORDER BY decided_at, event_id) AS decision
      FROM routing_decisions WHERE task_id = %(task)s) d
CROSS JOIN LATERAL jsonb_array_elements(d.candidates) WITH ORDINALITY AS c(value, rank)
ORDER BY d.decision, c.rank""",
            Chart("bar", "candidate", ("probability", "predicted_success", "score")),
            needs=("task",),
            table_open=True,
        ),
        Panel(
            "task_outcome",
            "What happened next: the task",
            """
SELECT task_id, status, attempt, assigned_agent_id, reason, submitted_at, routed_at, finished_at,
       result_summary, error
FROM tasks WHERE task_id = %(task)s""",
            needs=("task",),
        ),
        Panel(
            "task_attempts",
            "What happened next: assignments, reassignments and outcomes",
            """
SELECT attempt, agent_id, capability, assigned_at, started_at, finished_at, outcome, success, duration_ms
FROM task_assignments WHERE task_id = %(task)s ORDER BY attempt""",
            needs=("task",),
        ),
        # --- security ---
        # Each kind is looked up on the (kind, occurred_at) index, rather than the table read whole.
        Panel(
            "security_by_kind",
            "Security events by kind",
            f"""
SELECT k.kind, count(e.event_id) AS events
FROM unnest(%(kinds)s::text[]) AS k(kind)
LEFT JOIN security_events e ON e.kind = k.kind AND {_IN_RANGE.format(column="e.occurred_at")}
     AND (%(agent)s::text IS NULL OR e.agent_id = %(agent)s)
GROUP BY k.kind ORDER BY k.kind""",
            Chart("bar", "kind", ("events",), y_title="events"),
        ),
        Panel(
            "security_latest",
            "Latest security events",
            f"""
SELECT e.occurred_at, e.kind, e.agent_id, e.key_id, e.detail ->> 'reason' AS reason,
       e.origin_topic, e.origin_partition, e.origin_offset
FROM unnest(%(kinds)s::text[]) AS k(kind)
CROSS JOIN LATERAL (
    SELECT * FROM security_events s
    WHERE s.kind = k.kind AND {_IN_RANGE.format(column="s.occurred_at")}
      AND (%(agent)s::text IS NULL OR s.agent_id = %(agent)s)
    ORDER BY s.occurred_at DESC LIMIT 50) e
ORDER BY e.occurred_at DESC, e.event_id LIMIT 50""",
            links={"agent_id": "agent"},
        ),
        # --- audit (schema AUDIT_DB_SCHEMA, named by {audit}) ---
        Panel("audit_head", "Audit log head", "SELECT max(seq) AS head_seq FROM {audit}.audit_log"),
        Panel(
            "audit_recent_topics",
            "Topics of the latest 10,000 audit rows",
            """
SELECT topic, count(*) AS rows FROM (SELECT topic FROM {audit}.audit_log ORDER BY seq DESC LIMIT 10000) latest
GROUP BY topic ORDER BY topic""",
            Chart("bar", "topic", ("rows",), y_title="rows"),
        ),
    )
}


@dataclass(frozen=True)
class Page:
    key: str
    title: str
    panels: tuple[str, ...]
    about: str


PAGES: dict[str, Page] = {
    p.key: p
    for p in (
        Page(
            "now",
            "Now",
            (
                "tasks_per_minute",
                "success_per_minute",
                "queue_per_capability",
                "wait_per_capability",
                "agents_by_health",
                "agents_load",
            ),
            "How the fleet is doing: throughput, success, queues and waits, health and load.",
        ),
        Page(
            "agents",
            "Agents",
            ("agent_capabilities", "skill_trajectory", "skill_shifts", "skill_forecast"),
            "One agent: its capabilities, how its skill moved, the changes detected, where it is heading.",
        ),
        Page(
            "capabilities",
            "Capabilities",
            ("success_heatmap", "saturation_forecast", "recommendations"),
            "Who succeeds at what, which capability is running out of agents, and what to do.",
        ),
        Page(
            "decisions",
            "Decisions",
            ("recent_tasks", "decision_candidates", "task_outcome", "task_attempts"),
            "Why a task went where it went: every candidate the router weighed, and what came of it.",
        ),
        Page("whatif", "What-if", (), "Results of what-if runs, once there are any."),
        Page(
            "audit",
            "Audit",
            ("audit_head", "audit_recent_topics"),
            "Whether the audit chain is intact, and its latest signed checkpoints.",
        ),
        Page(
            "security",
            "Security",
            ("security_by_kind", "security_latest"),
            "Keys enrolled and revoked, and every record refused as not coming from the agent it spoke for.",
        ),
    )
}
