"""A replay's records folded into final rows: what a bulk load writes into a fresh schema."""

from __future__ import annotations

from datetime import datetime

from projections.batch import decode_record
from projections.fold import Fold
from projections.handlers import ops_for


class FoldedLog:
    """Takes batches of consumed records, each in log order, as the row-by-row replay applies them.

    Every record advances its partition's position, whether it was used, refused by the
    identity gate, or could not be decoded; only the used ones change rows. With `until`,
    events that occurred later only advance the position (a point-in-time copy).
    """

    def __init__(self, until: datetime | None = None, streamed: frozenset[str] = frozenset()) -> None:
        self.until = until
        self.fold = Fold(streamed)
        self.positions: dict[tuple[str, int], int] = {}
        self.events = 0
        self.rejected = 0

    def take(self, accepted, refused) -> None:
        until, apply = self.until, self.fold.apply
        for record in accepted:
            try:
                event = decode_record(record)
                ops = ops_for(event) if until is None or event.occurred_at <= until else ()
            except Exception:  # noqa: BLE001 - as in `prepare`: a record that fails only advances
                self.rejected += 1
                continue
            apply(ops)
        self.rejected += len(refused)
        self.events += len(accepted) + len(refused)
        self._advance(accepted)
        self._advance(refused)

    def _advance(self, records) -> None:
        positions = self.positions
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset > positions.get(tp, -1):
                positions[tp] = record.offset
