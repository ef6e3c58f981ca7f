"""The audit projector's decisions, pure: which records to chain, when to sign a checkpoint,
which stored checkpoint to resume from."""

from __future__ import annotations

from services.audit import checkpoints
from services.audit.chain import Entry
from services.audit.checkpoints import Checkpoint


def entry_of(record) -> Entry:
    return Entry(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        tuple((name, value) for name, value in (record.headers or ())),
    )


def fresh(records, stored: dict[tuple[str, int], int]) -> list:
    """Records past the stored position of their partition, each once, in consumed order.

    A redelivery (a rebalance, a retried fetch) must not add a row a second time.
    """
    newest = dict(stored)
    kept = []
    for record in records:
        tp = (record.topic, record.partition)
        if record.offset > newest.get(tp, -1):
            newest[tp] = record.offset
            kept.append(record)
    return kept


def checkpoint_due(rows_since: int, seconds_since: float, *, every_rows: int, every_s: float) -> bool:
    return rows_since > 0 and (rows_since >= every_rows or seconds_since >= every_s)


def newest_valid(found: list[tuple[str, Checkpoint | None]], public_key) -> Checkpoint | None:
    valid = [c for _, c in found if c is not None and checkpoints.signature_valid(c, public_key)]
    return max(valid, key=lambda c: c.last_seq, default=None)
