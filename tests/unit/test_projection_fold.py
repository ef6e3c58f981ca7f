"""Folding row operations in memory, as a bulk replay does before its COPY."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from bench.demo.feed import scripted_feed
from events.codec import encode, type_header
from events.examples import example_event
from events.topics import topic_for_event, topic_name
from projections.batch import prepare
from projections.fold import Fold, row_outranks
from projections.folded_log import FoldedLog
from projections.handlers import HANDLERS, ops_for
from projections.memory_view import InMemoryView
from projections.ops import Delete, Insert, Position, Upsert
from projections.rows import HISTORY_TABLES
from tests import factories as f


def _canonical(rows) -> list[bytes]:
    # The in-memory view stores JSON values as they come back from JSON; the fold keeps them as given.
    return sorted(
        orjson.dumps({k: v for k, v in row.items() if v is not None}, option=orjson.OPT_SORT_KEYS) for row in rows
    )


async def test_folding_gives_the_rows_of_the_in_memory_view():
    events = (
        [example_event(t) for t in sorted(HANDLERS)]
        + list(scripted_feed(agents=5, tasks=200, seed=4))
        + [
            f.registered("agent-1", capabilities=(("python", 0.8), ("sql", 0.6))),
            f.registered("agent-1", capabilities=(("go", 0.9),), t=5),
            f.handed_off(),
            f.deregistered(),
        ]
    )
    view, fold = InMemoryView(), Fold()
    await view.apply([(Position("log", 0, i), ops_for(e)) for i, e in enumerate(events)])
    for event in events:
        fold.apply(ops_for(event))

    assert set(fold.tables) == set(view.tables)
    for table in view.tables:
        assert _canonical(fold.rows(table)) == _canonical(view.rows(table)), table


def test_a_null_in_the_rank_decides_nothing_as_in_sql():
    assert row_outranks((2,), (1,))
    assert not row_outranks((1,), (1,))
    assert not row_outranks((None,), (1,))
    assert not row_outranks((1, None), (1, 5))
    assert row_outranks((2, None), (1, 5))  # decided before the NULL pair is reached


def test_the_rank_is_judged_on_the_row_as_it_was():
    rank = ("at",)
    fold = Fold()
    fold.apply(
        [
            Upsert("t", {"id": 1}, {"v": "old", "at": 5}, merge={"v": "ranked"}, rank=rank),
            Upsert("t", {"id": 1}, {"v": "new", "at": 9}, merge={"v": "ranked"}, rank=rank),
            Upsert("t", {"id": 1}, {"v": "stale", "at": 7}, merge={"v": "ranked"}, rank=rank),
        ]
    )

    assert fold.rows("t") == [{"id": 1, "v": "new", "at": 9}]


def test_merge_rules_treat_null_as_postgresql_does():
    fold = Fold()
    rules = {"hi": "max", "lo": "min", "first": "keep", "sum": "add"}
    fold.apply(
        [
            Upsert("t", {"id": 1}, {"hi": None, "lo": 3, "first": None, "sum": None}, merge=rules),
            Upsert("t", {"id": 1}, {"hi": 2, "lo": None, "first": "a", "sum": None}, merge=rules),
            Upsert("t", {"id": 1}, {"hi": 1, "lo": 1, "first": "b", "sum": 4}, merge=rules),
        ]
    )

    assert fold.rows("t") == [{"id": 1, "hi": 2, "lo": 1, "first": "a", "sum": 4}]


def test_the_first_insert_stays_and_a_delete_removes_every_matching_row():
    fold = Fold()
    fold.apply(
        [
            Insert("h", {"event_id": "e1", "n": 1}),
            Insert("h", {"event_id": "e1", "n": 2}),
            Upsert("caps", {"agent_id": "a", "name": "x"}, {"p": 1}),
            Upsert("caps", {"agent_id": "a", "name": "y"}, {"p": 2}),
            Upsert("caps", {"agent_id": "b", "name": "x"}, {"p": 3}),
            Delete("caps", {"agent_id": "a"}),
        ]
    )

    assert fold.rows("h") == [{"event_id": "e1", "n": 1}]
    assert fold.rows("caps") == [{"agent_id": "b", "name": "x", "p": 3}]


def test_rows_of_a_streamed_table_are_handed_out_once_as_first_inserted_and_not_kept():
    fold = Fold(streamed=frozenset({"h"}))
    fold.apply([Insert("h", {"event_id": "e1", "n": 1}), Upsert("t", {"id": 1}, {"v": 1})])
    assert fold.new_row_count == 1
    assert fold.take_new_rows() == {"h": [{"event_id": "e1", "n": 1}]}

    fold.apply([Insert("h", {"event_id": "e1", "n": 2}), Insert("h", {"event_id": "e2", "n": 3})])

    assert fold.take_new_rows() == {"h": [{"event_id": "e2", "n": 3}]}  # the first e1 stays, as in SQL
    assert fold.take_new_rows() == {} and fold.new_row_count == 0
    assert set(fold.tables) == {"t"}


def test_a_streamed_table_refuses_an_update_or_a_delete():
    fold = Fold(streamed=frozenset({"h"}))
    for op in (Upsert("h", {"event_id": "e1"}, {"n": 1}), Delete("h", {"event_id": "e1"})):
        with pytest.raises(TypeError, match="only takes inserts"):
            fold.apply([op])


def test_the_history_tables_are_exactly_those_every_handler_only_inserts_into():
    kinds: dict[str, set[type]] = {}
    events = [example_event(t) for t in sorted(HANDLERS)] + list(scripted_feed(agents=3, tasks=40, seed=2))
    for event in events:
        for op in ops_for(event):
            kinds.setdefault(op.table, set()).add(type(op))
    only_inserted = {table for table, seen in kinds.items() if seen == {Insert}}

    assert HISTORY_TABLES == only_inserted


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: list


def _records(events, *, partition: int = 0, with_header: bool = True) -> list[Record]:
    """Each event on its own topic: an event is taken only from there."""
    return [
        Record(
            topic_name(topic_for_event(e.event_type), "p"),
            partition,
            i,
            encode(e),
            [type_header(e)] if with_header else [],
        )
        for i, e in enumerate(events)
    ]


# Where `_records` puts a lifecycle's five events, as (topic, partition): the last offset on each.
LIFECYCLE_POSITIONS = {("p.tasks", 0): 1, ("p.assignments", 0): 2, ("p.task-outcomes", 0): 4}


def test_every_record_advances_its_partition_whether_used_refused_or_rejected():
    folded = FoldedLog()
    records = _records(f.lifecycle("task-1"))
    bad = Record("p.tasks", 1, 7, b"{not json", [])
    folded.take(records[:3] + [bad], refused=[records[3]])
    folded.take(records[4:], refused=[])

    assert folded.positions == {**LIFECYCLE_POSITIONS, ("p.tasks", 1): 7}
    assert (folded.events, folded.rejected) == (6, 2)
    [task] = folded.fold.rows("tasks")
    assert task["status"] == "completed"


def test_a_header_that_misdescribes_its_record_is_refused_as_the_live_projector_refuses_it():
    # The router passes such a submission over unread: shown as submitted, it would wait forever.
    folded = FoldedLog()
    record = Record("p.tasks", 0, 0, encode(f.submitted("task-1")), [("event_type", b"TaskStarted")])
    folded.take([record], refused=[])

    assert folded.rejected == 1
    assert folded.fold.rows("tasks") == []
    assert folded.positions == {("p.tasks", 0): 0}
    [(rejected, error)] = prepare([record]).rejected
    assert rejected is record and "header says TaskStarted" in str(error)


def test_after_the_until_instant_events_only_advance_positions():
    folded = FoldedLog(until=f.at(2))
    folded.take(_records(f.lifecycle("task-1", t=1), with_header=False), refused=[])

    [task] = folded.fold.rows("tasks")
    assert task["status"] == "routed"
    assert folded.positions == LIFECYCLE_POSITIONS
