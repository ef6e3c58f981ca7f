"""Rollups of tasks and assignments (migration 0012), kept equal to the rows they count.

What each task adds to the rollups is computed from its rows by one statement (`_CONTRIBUTIONS`).
A batch that writes tasks or assignments records, for the tasks it touches, what they added before
it (with sign -1) and what they add after it (+1), and adds the sums to the rollups: whatever the
order of the events and the merge rules made of the rows, the rollups move with them. A rebuild
computes the same contributions for every task at once. Both run in the transaction that writes
the rows; copies of the projector take `ROLLUP_LOCK` for it, one batch at a time, since a task's
rows may be written by two of them at once (its outcome and its assignment, from two topics).
"""

from __future__ import annotations

from typing import Iterable

from projections.ops import Insert, Op

ROLLUP_LOCK = 0x6F72636F  # with the schema's hash: one batch at a time writes a schema's rollups
SOURCES = ("tasks", "task_assignments")
FAILED = "('failed', 'rejected', 'timed_out', 'expired')"


def wait_key(wait: str) -> str:
    """SQL rounding a wait in ms to three significant figures: its bucket in `task_wait_hours`."""
    return f"CASE WHEN {wait} = 0 THEN 0 ELSE round({wait}, 2 - floor(log(abs({wait})))::int) END"


CHANGES_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS rollup_changes (
    rollup text NOT NULL, at timestamptz NOT NULL, capability text, agent_id text, wait_ms numeric,
    n bigint NOT NULL, a bigint NOT NULL, b bigint NOT NULL, total numeric
)"""

# {tasks}: a condition on tasks t or task_waits t; {assignments}: on task_assignments a.
_CONTRIBUTIONS = f"""
INSERT INTO pg_temp.rollup_changes (rollup, at, capability, agent_id, wait_ms, n, a, b, total)
SELECT 'task_minutes', date_trunc('minute', t.submitted_at, 'UTC'), t.requirements -> 0 ->> 'name', NULL::text,
       NULL::numeric,
       %(sign)s::int, %(sign)s::int * (t.status = 'completed')::int,
       %(sign)s::int * (t.status IN {FAILED})::int, NULL::numeric
FROM tasks t WHERE t.submitted_at IS NOT NULL {{tasks}}
UNION ALL
SELECT 'assignment_minutes', date_trunc('minute', a.assigned_at, 'UTC'), a.capability, NULL, NULL,
       %(sign)s::int, %(sign)s::int * (a.success IS NOT NULL)::int, %(sign)s::int * (a.success IS TRUE)::int, NULL
FROM task_assignments a WHERE a.assigned_at IS NOT NULL {{assignments}}
UNION ALL
SELECT 'assignment_hours', date_trunc('hour', a.assigned_at, 'UTC'), a.capability, a.agent_id, NULL,
       %(sign)s::int, %(sign)s::int * (a.success IS NOT NULL)::int, %(sign)s::int * (a.success IS TRUE)::int, NULL
FROM task_assignments a
WHERE a.assigned_at IS NOT NULL AND a.agent_id IS NOT NULL AND a.capability IS NOT NULL {{assignments}}
UNION ALL
SELECT 'task_wait_hours', date_trunc('hour', t.submitted_at, 'UTC'), t.capability, NULL, {wait_key("t.wait_ms")},
       %(sign)s::int, 0, 0, %(sign)s::int * t.wait_ms
FROM task_waits t WHERE true {{tasks}}"""

CAPTURE = _CONTRIBUTIONS.format(tasks="AND t.task_id = ANY(%(ids)s)", assignments="AND a.task_id = ANY(%(ids)s)")
CAPTURE_ALL = _CONTRIBUTIONS.format(tasks="", assignments="")

# rollup table, its key columns (as named in rollup_changes), its count columns (n, a, b, total)
_TABLES = {
    "task_minutes": (("minute", "at"), ("capability", "capability")),
    "assignment_minutes": (("minute", "at"), ("capability", "capability")),
    "assignment_hours": (("hour", "at"), ("agent_id", "agent_id"), ("capability", "capability")),
    "task_wait_hours": (("hour", "at"), ("capability", "capability"), ("wait_ms", "wait_ms")),
}
_COUNTS = {
    "task_minutes": (("submitted", "n"), ("completed", "a"), ("failed", "b")),
    "assignment_minutes": (("assigned", "n"), ("finished", "a"), ("succeeded", "b")),
    "assignment_hours": (("assigned", "n"), ("finished", "a"), ("succeeded", "b")),
    "task_wait_hours": (("tasks", "n"), ("total_wait_ms", "total")),
}


def _add(table: str) -> str:
    """Add the changes to `table`, in key order (so that two writers never wait on each other in a circle)."""
    keys, counts = _TABLES[table], _COUNTS[table]
    key_list = ", ".join(k for k, _ in keys)
    sums = ", ".join(f"sum({c})" for _, c in counts)
    return (
        f"INSERT INTO {table} ({key_list}, {', '.join(k for k, _ in counts)}) "
        f"SELECT {', '.join(c for _, c in keys)}, {sums} FROM pg_temp.rollup_changes WHERE rollup = '{table}' "
        f"GROUP BY {', '.join(c for _, c in keys)} HAVING {' OR '.join(f'sum({c}) <> 0' for _, c in counts)} "
        f"ORDER BY {', '.join(c for _, c in keys)} "
        f"ON CONFLICT ({key_list}) DO UPDATE SET " + ", ".join(f"{k} = {table}.{k} + excluded.{k}" for k, _ in counts)
    )


def _drop_empty(table: str) -> str:
    """Rows no task counts in any more go: a rebuild would not have them."""
    keys, counts = _TABLES[table], _COUNTS[table]
    return (
        f"DELETE FROM {table} r USING (SELECT DISTINCT {', '.join(c for _, c in keys)} FROM pg_temp.rollup_changes "
        f"WHERE rollup = '{table}') c WHERE "
        + " AND ".join(f"r.{k} IS NOT DISTINCT FROM c.{c}" for k, c in keys)
        + f" AND r.{counts[0][0]} = 0"
    )


APPLY = tuple(statement for table in _TABLES for statement in (_add(table), _drop_empty(table))) + (
    "DELETE FROM pg_temp.rollup_changes",
)
TABLES = tuple(_TABLES)


def touched_tasks(ops: Iterable[Op]) -> list[str]:
    """The tasks whose rows `ops` write, in order."""
    found = set()
    for op in ops:
        if op.table in SOURCES:
            found.add(op.row["task_id"] if isinstance(op, Insert) else op.key["task_id"])
    return sorted(found)


async def rebuild(conn) -> None:
    """Every rollup computed afresh from the rows, in the schema on the search path (within a transaction)."""
    await conn.execute(CHANGES_TABLE)
    await conn.execute("TRUNCATE " + ", ".join(TABLES))
    await conn.execute(CAPTURE_ALL, {"sign": 1})
    for statement in APPLY:
        await conn.execute(statement)
