"""The audit log against the broker, without either: each row compared with the record at its position."""

from dataclasses import replace

from services.audit.chain import Entry, Head, extend
from services.audit.crosscheck import Broker, CrossCheck, entry_digest


def entries(n: int) -> list[Entry]:
    return [Entry("p.tasks", 0, i, 0, f"task-{i}".encode(), f'{{"n": {i}}}'.encode(), (("h", b"1"),)) for i in range(n)]


def broker_of(records: list[Entry], *, begin: int = 0, end: int | None = None) -> Broker:
    return Broker(
        {(e.topic, e.partition, e.offset): entry_digest(e) for e in records},
        begin={("p.tasks", 0): begin},
        end={("p.tasks", 0): len(records) if end is None else end},
    )


def cross_check(rows, broker: Broker):
    check = CrossCheck(broker)
    for row in rows:
        check.feed(row)
    return check.finish()


def test_a_row_rewritten_with_fresh_hashes_is_named_at_its_seq():
    original = entries(10)
    rewritten = original[:6] + [replace(original[6], value=b'{"n": -1}')] + original[7:]
    rows, _ = extend(Head(), rewritten)  # a consistent chain: only the broker can tell

    problems = cross_check(rows, broker_of(original))

    assert [(p.seq, p.kind, p.position) for p in problems] == [(7, "differs_from_kafka", "p.tasks[0]@6")]


def test_a_record_dropped_from_a_recomputed_chain_is_named_with_its_position():
    original = entries(10)
    rows, _ = extend(Head(), original[:4] + original[5:])

    problems = cross_check(rows, broker_of(original))

    assert [(p.seq, p.kind, p.position) for p in problems] == [(5, "unaudited", "p.tasks[0]@4")]


def test_a_row_for_a_record_the_broker_never_had_is_named():
    original = entries(5)
    made_up = Entry("p.tasks", 0, 2, 0, b"x", b"y")
    rows, _ = extend(Head(), original[:2] + [made_up] + original[3:])

    problems = cross_check(rows, broker_of(original[:2] + original[3:], end=5))

    assert [(p.seq, p.kind) for p in problems] == [(3, "not_on_kafka")]


def test_expired_records_lag_and_rows_newer_than_the_broker_read_are_not_problems():
    original = entries(10)
    rows, _ = extend(Head(), original)

    # The broker has expired offsets 0-2 and was read up to offset 7; the audit is at 9.
    broker = broker_of(original[3:8], begin=3, end=8)
    lagging, _ = extend(Head(), original[:5])

    assert cross_check(rows, broker) == []
    assert cross_check(lagging, broker_of(original)) == []
