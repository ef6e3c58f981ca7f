"""A dense outcome log, as users keep one: a CSV (or csv.gz) with one row per (task, agent).

Needed columns: `task_id`, `agent_id`, `outcome` (1 or 0; true/false and success/failure read too).
Optional: `capability` (else every task is of one capability, `DEFAULT_CAPABILITY`), `task_seq` (the
order tasks are submitted in, else the order they first appear), `seq` (the order of a task's rows,
else the file's), `cost` (what the agent's attempt cost) and numeric task features: any other
column whose value is a number and the same on every row of a task (`prompt_chars`, say). A column
that differs between a task's rows, such as a raw `score`, describes the attempt, not the task,
and is never a feature: it would give the outcome away. Names are kept as written (`owner/repo`).
"""

from __future__ import annotations

import csv
import gzip
import math
import re
from dataclasses import dataclass, field

from events.tasks import TaskSubmitted
from events.values import ID_MAX_LENGTH, ID_PATTERN, CapabilityRequirement

REQUIRED = ("task_id", "agent_id", "outcome")
OPTIONAL = ("capability", "task_seq", "seq", "cost")
DEFAULT_CAPABILITY = "default"
SUCCESS = {"1", "1.0", "true", "yes", "success"}
FAILURE = {"0", "0.0", "false", "no", "failure"}
NEEDS = (
    "a log needs the columns task_id, agent_id and outcome (1 or 0), one row per task and agent; "
    "optionally capability, task_seq (submission order), seq (row order), cost and numeric task "
    "features (e.g. prompt_chars)"
)


class LogFormatError(ValueError):
    """The log cannot be read as an outcome log; the message says where and what a log needs."""


@dataclass(frozen=True)
class LoggedTask:
    task_id: str
    capability: str
    features: dict[str, float]  # the task's numeric features, those it has
    outcomes: dict[str, bool]  # agent -> logged outcome
    costs: dict[str, float] = field(default_factory=dict)  # agent -> cost of its attempt, where logged

    def submitted(self, submitter: str = "evaluation") -> TaskSubmitted:
        return TaskSubmitted(
            task_id=self.task_id,
            submitter=submitter,
            features=self.features,
            requirements=(CapabilityRequirement(name=self.capability),),
        )


def load(path: str, limit: int | None = None) -> list[LoggedTask]:
    """Tasks in `task_seq` order (else first appearance), each agent's outcome in row order; `limit` 0 or None: all."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as stream:
        reader = csv.DictReader(stream)
        columns = [c.strip() for c in reader.fieldnames or ()]
        if missing := [c for c in REQUIRED if c not in columns]:
            raise LogFormatError(
                f"{path}: no column {', '.join(missing)}; {NEEDS} (found: {', '.join(columns) or 'nothing'})"
            )
        reader.fieldnames = columns
        rows: dict[str, list[tuple[float, int, dict]]] = {}  # task -> (row order, line, row)
        first_seen: dict[str, tuple[float, int]] = {}
        for line, row in enumerate(reader, 2):
            task_id = name(row, "task_id", path, line)
            order = number(row, "seq", path, line, default=float(line))
            rows.setdefault(task_id, []).append((order, line, row))
            position = number(row, "task_seq", path, line, default=float(len(first_seen)))
            first_seen.setdefault(task_id, (position, line))
    chosen = [sorted(rows[task_id], key=lambda r: r[:2]) for task_id in sorted(first_seen, key=first_seen.get)]
    chosen = chosen[: limit or None]
    if not chosen:
        raise LogFormatError(f"{path}: no rows; {NEEDS}")
    features = task_features([c for c in columns if c not in REQUIRED + OPTIONAL], chosen)
    return [task(rows, features, path) for rows in chosen]


def task_features(candidates: list[str], tasks: list[list[tuple[float, int, dict]]]) -> list[str]:
    """The columns that are a number wherever given and never differ between the rows of one task."""

    def of_the_task(column: str) -> bool:
        for rows in tasks:
            values = {(row.get(column) or "").strip() for _, _, row in rows}
            if len(values) > 1 or any(v and as_number(v) is None for v in values):
                return False
        return True

    return [c for c in candidates if of_the_task(c)]


def task(rows: list[tuple[float, int, dict]], feature_columns: list[str], path: str) -> LoggedTask:
    outcomes, costs = {}, {}
    for _, line, row in rows:
        agent = name(row, "agent_id", path, line)
        outcomes[agent] = outcome(row, path, line)
        if (cost := number(row, "cost", path, line, default=None)) is not None:
            costs[agent] = cost
    first_line, first = rows[0][1], rows[0][2]
    capability = (
        name(first, "capability", path, first_line) if (first.get("capability") or "").strip() else DEFAULT_CAPABILITY
    )
    features = {c: value for c in feature_columns if (value := as_number((first.get(c) or "").strip())) is not None}
    return LoggedTask(name(first, "task_id", path, first_line), capability, features, outcomes, costs)


def name(row: dict, column: str, path: str, line: int) -> str:
    value = (row.get(column) or "").strip()
    if not re.fullmatch(ID_PATTERN, value):
        raise LogFormatError(
            f"{path}, line {line}: {column} {value[:40]!r} is not a name (1 to {ID_MAX_LENGTH} "
            f"characters, no control characters); {NEEDS}"
        )
    return value


def outcome(row: dict, path: str, line: int) -> bool:
    value = (row.get("outcome") or "").strip().lower()
    if value in SUCCESS or value in FAILURE:
        return value in SUCCESS
    raise LogFormatError(f"{path}, line {line}: outcome {value[:40]!r} is neither 1 nor 0; {NEEDS}")


def number(row: dict, column: str, path: str, line: int, default: float | None) -> float | None:
    value = (row.get(column) or "").strip()
    if not value:
        return default
    if (parsed := as_number(value)) is None:
        raise LogFormatError(f"{path}, line {line}: {column} {value[:40]!r} is not a number")
    return parsed


def as_number(value: str) -> float | None:
    try:
        parsed = float(value)
    except ValueError:
        return None
    return parsed if math.isfinite(parsed) else None
