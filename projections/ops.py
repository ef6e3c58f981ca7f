"""Row operations: what a projection handler asks a view to do.

Handlers are pure and return these; an in-memory view and the PostgreSQL view apply
them with the same meaning, so one contract test covers both. Merge rules make the
result independent of the order in which events of different topics arrive, which
is what lets a replay reproduce the live tables row for row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

# set: overwrite; keep: first non-null value wins; max/min: extremes; add: running sum;
# ranked: overwrite only when the op's rank tuple is greater than the row's.
Merge = Literal["set", "keep", "max", "min", "add", "ranked"]


@dataclass(frozen=True)
class Upsert:
    table: str
    key: Mapping[str, Any]
    values: Mapping[str, Any]
    merge: Mapping[str, Merge] = field(default_factory=dict)
    rank: tuple[str, ...] = ()  # columns of `values` forming the rank of "ranked" columns

    def rule(self, column: str) -> Merge:
        return self.merge.get(column, "set")


@dataclass(frozen=True)
class Insert:
    """Append a history row; a row whose key already exists is left alone."""

    table: str
    row: Mapping[str, Any]
    key: tuple[str, ...] = ("event_id",)  # the table's primary key columns


@dataclass(frozen=True)
class Delete:
    table: str
    key: Mapping[str, Any]


Op = Upsert | Insert | Delete


@dataclass(frozen=True, order=True)
class Position:
    topic: str
    partition: int
    offset: int
