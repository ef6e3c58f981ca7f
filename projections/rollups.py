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
    """SQL rounding a wait in ms to three significant figures: its bucket in `task_wait_hours`.

    Its magnitude from a float's logarithm: a numeric one takes forty times as long, and at a power
    of ten, where the two may differ, both roundings give the same value."""
    return f"CASE WHEN {wait} = 0 THEN 0 ELSE round({wait}, 2 - floor(log(abs({wait})::float8))::int) END"


CHANGES_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS rollup_changes (
    rollup text NOT NULL, at timestamptz NOT NULL, capability text, agent_id text, wait_ms numeric,
    n bigint NOT NULL, a bigint NOT NULL, b bigint NOT NULL, total numeric
)"""

# What the rows of each task add to each rollup: (at, capability, agent_id, wait_ms, n, a, b, total),
# times %(sign)s. {tasks}: a condition on tasks t; {assignments}: on task_assignments a.
_CONTRIBUTIONS = {
    "task_minutes": f"""
SELECT date_trunc('minute', t.submitted_at, 'UTC'), t.requirements -> 0 ->> 'name', NULL::text, NULL::numeric,
       %(sign)s::int, %(sign)s::int * (t.status = 'completed')::int, %(sign)s::int * (t.status IN {FAILED})::int,
       NULL::numeric
FROM tasks t WHERE t.submitted_at IS NOT NULL {{tasks}}""",
    "assignment_minutes": """
SELECT date_trunc('minute', a.assigned_at, 'UTC'), a.capability, NULL::text, NULL::numeric,
       %(sign)s::int, %(sign)s::int * (a.success IS NOT NULL)::int, %(sign)s::int * (a.success IS TRUE)::int,
       NULL::numeric
FROM task_assignments a WHERE a.assigned_at IS NOT NULL {assignments}""",
    "assignment_hours": """
SELECT date_trunc('hour', a.assigned_at, 'UTC'), a.capability, a.agent_id, NULL::numeric,
       %(sign)s::int, %(sign)s::int * (a.success IS NOT NULL)::int, %(sign)s::int * (a.success IS TRUE)::int,
       NULL::numeric
FROM task_assignments a
WHERE a.assigned_at IS NOT NULL AND a.agent_id IS NOT NULL AND a.capability IS NOT NULL {assignments}""",
    # As `task_waits` has them, the first assignment found by grouping rather than per task: a rebuild
    # then reads the assignments once, where a lookup per task may walk an index of all of them.
    **{
        f"task_wait_{unit}s": f"""
SELECT date_trunc('{unit}', t.submitted_at, 'UTC'), t.requirements -> 0 ->> 'name', NULL::text,
       {wait_key("w.wait_ms")}, %(sign)s::int, 0, 0, %(sign)s::int * w.wait_ms
FROM tasks t
JOIN (SELECT a.task_id, min(a.assigned_at) AS assigned_at FROM task_assignments a WHERE true {{assignments}}
      GROUP BY a.task_id) first ON first.task_id = t.task_id
CROSS JOIN LATERAL (SELECT extract(epoch FROM first.assigned_at - t.submitted_at) * 1000.0 AS wait_ms) w
WHERE t.submitted_at IS NOT NULL AND first.assigned_at IS NOT NULL {{tasks}}"""
        for unit in ("hour", "day")
    },
}
_OF_TASKS = {"tasks": "AND t.task_id = ANY(%(ids)s)", "assignments": "AND a.task_id = ANY(%(ids)s)"}
CAPTURE = (
    "INSERT INTO pg_temp.rollup_changes (rollup, at, capability, agent_id, wait_ms, n, a, b, total) "
    + " UNION ALL ".join(
        f"SELECT '{table}', * FROM ({select.format(**_OF_TASKS)}) c" for table, select in _CONTRIBUTIONS.items()
    )
)

# rollup table, its key columns (as named in rollup_changes), its count columns (n, a, b, total)
_TABLES = {
    "task_minutes": (("minute", "at"), ("capability", "capability")),
    "assignment_minutes": (("minute", "at"), ("capability", "capability")),
    "assignment_hours": (("hour", "at"), ("agent_id", "agent_id"), ("capability", "capability")),
    "task_wait_hours": (("hour", "at"), ("capability", "capability"), ("wait_ms", "wait_ms")),
    "task_wait_days": (("day", "at"), ("capability", "capability"), ("wait_ms", "wait_ms")),
}
_COUNTS = {
    "task_minutes": (("submitted", "n"), ("completed", "a"), ("failed", "b")),
    "assignment_minutes": (("assigned", "n"), ("finished", "a"), ("succeeded", "b")),
    "assignment_hours": (("assigned", "n"), ("finished", "a"), ("succeeded", "b")),
    "task_wait_hours": (("tasks", "n"), ("total_wait_ms", "total")),
    "task_wait_days": (("tasks", "n"), ("total_wait_ms", "total")),
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


def _recount(table: str) -> str:
    """`table` counted afresh from every row: the same contributions, summed straight into it."""
    keys, counts = _TABLES[table], _COUNTS[table]
    columns = {"at": 1, "capability": 2, "agent_id": 3, "wait_ms": 4, "n": 5, "a": 6, "b": 7, "total": 8}
    select = _CONTRIBUTIONS[table].format(tasks="", assignments="")
    return (
        f"INSERT INTO {table} ({', '.join(k for k, _ in keys)}, {', '.join(k for k, _ in counts)}) "
        f"SELECT {', '.join(f'c{columns[c]}' for _, c in keys)}, {', '.join(f'sum(c{columns[c]})' for _, c in counts)} "
        f"FROM ({select}) AS c (c1, c2, c3, c4, c5, c6, c7, c8) "
        f"GROUP BY {', '.join(f'c{columns[c]}' for _, c in keys)}"
    )


RECOUNT = tuple(_recount(table) for table in _TABLES)


async def rebuild(conn) -> None:
    """Every rollup computed afresh from the rows, in the schema on the search path (within a transaction)."""
    await conn.execute("TRUNCATE " + ", ".join(TABLES))
    for statement in RECOUNT:
        await conn.execute(statement, {"sign": 1})
