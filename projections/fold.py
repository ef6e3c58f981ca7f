"""Row operations folded into the rows they end as, in memory, meaning what PostgreSQL makes of them.

A rebuild writes into a fresh schema that nobody reads until it is swapped in, so it need not
upsert event by event: it can fold every operation into its row here and load the final rows
in bulk. Each rule follows the SQL that `postgres_view` generates, NULLs included (where the
in-memory view's reading could differ), because a bulk load must equal the row-by-row one.
"""

from __future__ import annotations

from typing import Any, Iterable

from projections.ops import Delete, Insert, Op, Upsert

Row = dict[str, Any]


def row_outranks(new: tuple, old: tuple) -> bool:
    """SQL's `(new...) > (old...)` read by CASE WHEN: a NULL pair decides "unknown", which is no."""
    for a, b in zip(new, old):
        if a is None or b is None:
            return False
        if a != b:
            return a > b
    return False


def _greatest(old: Any, new: Any) -> Any:
    return new if old is None else old if new is None else max(old, new)


def _least(old: Any, new: Any) -> Any:
    return new if old is None else old if new is None else min(old, new)


_MERGES = {
    "keep": lambda old, new: new if old is None else old,
    "max": _greatest,
    "min": _least,
    "add": lambda old, new: (old or 0) + (new or 0),
}


class Fold:
    """Tables as {primary key: row}, after every operation applied in the order given.

    The rows of `streamed` tables, which only ever get inserts (`rows.HISTORY_TABLES`), are final
    the moment they are first inserted: they are handed out by `take_new_rows` instead of kept,
    so a bulk load can write them while the rest of the log is still being folded.
    """

    def __init__(self, streamed: frozenset[str] = frozenset()) -> None:
        self.tables: dict[str, dict[tuple, Row]] = {}
        self.streamed = streamed
        self._streamed_keys: dict[str, set[tuple]] = {name: set() for name in streamed}
        self._new_rows: dict[str, list[Row]] = {}
        self.new_row_count = 0

    def apply(self, ops: Iterable[Op]) -> None:
        tables, streamed = self.tables, self.streamed
        for op in ops:
            kind = type(op)
            if op.table in streamed:
                self._insert_streamed(op)
                continue
            table = tables.get(op.table)
            if table is None:
                table = tables[op.table] = {}
            if kind is Upsert:
                _upsert(table, op)
            elif kind is Insert:
                row = op.row
                key = tuple([row[c] for c in op.key])
                if key not in table:  # ON CONFLICT DO NOTHING: the first one stays
                    table[key] = dict(row)
            elif kind is Delete:
                _delete(table, op)
            else:
                raise TypeError(f"not a row operation: {op!r}")

    def rows(self, table: str) -> list[Row]:
        return list(self.tables.get(table, {}).values())

    def take_new_rows(self) -> dict[str, list[Row]]:
        """The rows first inserted into streamed tables since the last call."""
        taken, self._new_rows, self.new_row_count = self._new_rows, {}, 0
        return taken

    def _insert_streamed(self, op: Op) -> None:
        if type(op) is not Insert:
            raise TypeError(f"{op.table} only takes inserts, so its rows are final when inserted; got {op!r}")
        row = op.row
        key = tuple([row[c] for c in op.key])
        keys = self._streamed_keys[op.table]
        if key not in keys:  # ON CONFLICT DO NOTHING: the first one stays
            keys.add(key)
            self._new_rows.setdefault(op.table, []).append(dict(row))
            self.new_row_count += 1


def _upsert(table: dict[tuple, Row], op: Upsert) -> None:
    key = tuple(op.key.values())
    row = table.get(key)
    if row is None:
        table[key] = {**op.key, **op.values}
        return
    values, merge, rank = op.values, op.merge, op.rank
    # Every SET expression reads the row as it was: the rank is judged once, before any change.
    if not rank or row.get(rank[0]) is None:
        outranks = True
    else:
        outranks = row_outranks(tuple([values[c] for c in rank]), tuple([row.get(c) for c in rank]))
    for column, new in values.items():
        rule = "ranked" if column in rank else merge.get(column, "set")
        if rule == "set":
            row[column] = new
        elif rule == "ranked":
            if outranks:
                row[column] = new
        else:
            row[column] = _MERGES[rule](row.get(column), new)


def _delete(table: dict[tuple, Row], op: Delete) -> None:
    wanted = op.key.items()
    for key in [k for k, row in table.items() if all(row.get(c) == v for c, v in wanted)]:
        del table[key]
