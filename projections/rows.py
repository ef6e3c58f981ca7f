"""Row operations built straight from an event, in the shapes the handler modules share.

Most read models either record each event as one history row or keep the newest values per
key; building both here keeps their merge rules the same for every table that uses them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from events.envelope import Envelope
from projections.ops import Insert, Upsert

# Tables whose rows are only ever inserted, one per event (never updated nor deleted): a bulk
# load writes each row as soon as it is folded (`fold.Fold`), which refuses any other operation
# on them. tests/unit/test_projection_fold.py checks the list against every handler.
HISTORY_TABLES = frozenset(
    {
        "agent_capability_history",
        "agent_health_changes",
        "erasures",
        "model_versions",
        "routing_decisions",
        "security_events",
        "skill_shifts",
        "skill_trajectory",
        "task_handoffs",
        "task_queue_events",
    }
)


def body_fields(body: Any, names: Iterable[str]) -> dict[str, Any]:
    """The body's attributes `names`, each as the column of the same name."""
    return {name: getattr(body, name) for name in names}


def history_row(
    table: str, event: Envelope, fields: Iterable[str], *, at: str, key: tuple[str, ...] = ("event_id",)
) -> Insert:
    """One row per event: its id, the body's `fields`, and when it occurred as column `at`."""
    return Insert(
        table, {"event_id": event.event_id, **body_fields(event.body, fields), at: event.occurred_at}, key=key
    )


def latest_by_time(
    table: str, key: Mapping[str, Any], event: Envelope, values: Mapping[str, Any], *, at: str
) -> Upsert:
    """The row holds the `values` of the newest event, stamped in column `at`.

    Ranked by time, so a replay that reads partitions in another order keeps the latest.
    """
    return Upsert(table, key, {**values, at: event.occurred_at}, merge={c: "ranked" for c in values}, rank=(at,))


def latest_fields(table: str, event: Envelope, key: Iterable[str], fields: Iterable[str], *, at: str) -> Upsert:
    """`latest_by_time` for a row whose key and values are body fields under their own names."""
    body = event.body
    return latest_by_time(table, body_fields(body, key), event, body_fields(body, fields), at=at)
