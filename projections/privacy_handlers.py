"""Projection handlers for the privacy topic.

Sealed payload fields need no handler of their own: TaskSubmitted stores the payload as it
came, ciphertext included, and no projection ever holds a key to open it.
"""

from __future__ import annotations

from events.envelope import Envelope
from projections.ops import Op
from projections.registry import handles
from projections.rows import history_row

_ERASURE_COLUMNS = ("key_id", "erasure_id", "erased_at", "erased_by", "reason")


@handles("SubjectErased")
def subject_erased(event: Envelope) -> list[Op]:
    # One row per destroyed key: erasing a key again (a retried request) keeps the first record.
    return [history_row("erasures", event, _ERASURE_COLUMNS, at="recorded_at", key=("key_id",))]
