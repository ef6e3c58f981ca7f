"""A view held in dictionaries: the reference semantics of the row operations."""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from projections.ops import Delete, Insert, Op, Position, Upsert


def _jsonable(value: Any) -> Any:
    # Rows hold what PostgreSQL would give back for jsonb: plain dicts and lists.
    if isinstance(value, (dict, list, tuple)):
        return orjson.loads(orjson.dumps(value))
    return value


class InMemoryView:
    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple, dict[str, Any]]] = {}
        self.positions: dict[tuple[str, int], int] = {}

    async def stored_positions(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {tp: self.positions[tp] for tp in partitions if tp in self.positions}

    async def apply(self, batch: list[tuple[Position, list[Op]]]) -> int:
        """Apply every (position, ops) newer than the stored position; return how many."""
        applied = 0
        for position, ops in batch:
            tp = (position.topic, position.partition)
            if position.offset <= self.positions.get(tp, -1):
                continue
            for op in ops:
                self._apply_op(op)
            self.positions[tp] = position.offset
            applied += 1
        return applied

    def rows(self, table: str) -> list[dict[str, Any]]:
        return [dict(row) for _, row in sorted(self.tables.get(table, {}).items())]

    def _apply_op(self, op: Op) -> None:
        table = self.tables.setdefault(op.table, {})
        if isinstance(op, Insert):
            key = tuple(op.row[c] for c in op.key)
            table.setdefault(key, {c: _jsonable(v) for c, v in op.row.items()})
        elif isinstance(op, Delete):
            for key in [k for k, row in table.items() if all(row.get(c) == v for c, v in op.key.items())]:
                del table[key]
        elif isinstance(op, Upsert):
            self._upsert(table, op)

    def _upsert(self, table: dict, op: Upsert) -> None:
        key = tuple(op.key.values())
        new = {c: _jsonable(v) for c, v in op.values.items()}
        row = table.get(key)
        if row is None:
            table[key] = {**op.key, **new}
            return
        outranks = _outranks(new, row, op.rank)
        for column, value in new.items():
            rule = "ranked" if column in op.rank else op.rule(column)
            row[column] = _merge(rule, row.get(column), value, outranks)


def _outranks(new: dict, row: dict, rank: tuple[str, ...]) -> bool:
    if not rank or row.get(rank[0]) is None:
        return True
    return tuple(new[c] for c in rank) > tuple(row[c] for c in rank)


def _merge(rule: str, old: Any, new: Any, outranks: bool) -> Any:
    if rule == "set":
        return new
    if rule == "keep":
        return old if old is not None else new
    if rule == "ranked":
        return new if outranks else old
    if old is None or new is None:
        return new if old is None else old
    if rule == "max":
        return max(old, new)
    if rule == "min":
        return min(old, new)
    if rule == "add":
        return old + new
    raise ValueError(f"unknown merge rule {rule!r}")
