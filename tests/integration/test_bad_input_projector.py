"""Bad input through the real projector into the real PostgreSQL.

Generated logs mix well-formed events of a small fleet, in any order, with malformed records of
every event type (tests/unit/malformed.py); they are handed to the projector in batches cut at
random. Each record is either projected or parked with its reason, every position moves on, a
final task state stays final, and the read model is exactly what the accepted records alone make.
"""

from __future__ import annotations

import asyncio

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from psycopg import sql

from projections.postgres_view import dump
from services.metrics import ProcessorMetrics
from services.projector.app import Projector
from services.projector.bootstrap import open_view
from tests.unit.malformed import mixed_records

pytestmark = pytest.mark.integration

# A few dozen logs of up to 40 records each keep this under half a minute on the shared stack.
BOUNDED = hypothesis.settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.parked: list[tuple[object, BaseException]] = []

    async def park(self, record, error: BaseException) -> None:
        self.parked.append((record, error))


async def _tables(view) -> list[str]:
    cur = await view.conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'",
        (view.schema,),
    )
    return [row[0] for row in await cur.fetchall()]


async def _empty(view, tables: list[str]) -> None:
    await view.conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables))))
    await view.conn.commit()


async def _final_tasks(view) -> dict[str, str]:
    cur = await view.conn.execute("SELECT task_id, status FROM tasks WHERE status_terminal")
    return dict(await cur.fetchall())


async def _read_model(view) -> dict:
    rows = await dump(view.conn, view.schema)
    rows.pop("projection_positions")
    return rows


def _projector(view, dead_letters) -> Projector:
    return Projector(
        consumer=None,
        view=view,
        dead_letters=dead_letters,
        metrics=ProcessorMetrics("projector"),
        topics=[],
        batch_size=500,
        batch_timeout_ms=100,
    )


async def _project_in_batches(view, records, cuts) -> RecordingDeadLetters:
    dead_letters = RecordingDeadLetters()
    projector = _projector(view, dead_letters)
    final: dict[str, str] = {}
    start = 0
    for end in [*sorted(cuts), len(records)]:
        if end <= start:
            continue
        await projector.handle(records[start:end])
        start = end
        now_final = await _final_tasks(view)
        left = {task_id for task_id in final if task_id not in now_final}
        assert not left, f"tasks {sorted(left)} left a final state"
        final = now_final
    return dead_letters


async def _check(view, tables, logged, cuts) -> None:
    records = [record for record, _ in logged]
    await _empty(view, tables)
    dead_letters = await _project_in_batches(view, records, cuts)

    parked = {id(record) for record, _ in dead_letters.parked}
    for record, body in logged:
        if body is not None and id(record) in parked:
            pytest.fail(f"a well-formed {body.event_type} was parked")
    assert all(str(error) for _, error in dead_letters.parked), "a record was parked without a reason"
    newest: dict[tuple[str, int], int] = {}
    for record in records:
        newest[(record.topic, record.partition)] = max(record.offset, newest.get((record.topic, record.partition), -1))
    assert await view.stored_positions(newest) == newest, "a position did not move on"

    # The parked records left no trace: the accepted ones alone make the same read model.
    with_rejected = await _read_model(view)
    await _empty(view, tables)
    await _projector(view, RecordingDeadLetters()).handle([r for r in records if id(r) not in parked])
    assert await _read_model(view) == with_rejected, "a parked record changed the read model"


def test_the_projector_parks_or_projects_every_record_and_keeps_the_read_model_sound(settings):
    with asyncio.Runner() as runner:
        view = runner.run(open_view(settings))
        try:
            tables = runner.run(_tables(view))

            @BOUNDED
            @given(mixed_records(), st.lists(st.integers(min_value=1, max_value=40), max_size=4))
            def check(logged, cuts):
                runner.run(_check(view, tables, logged, cuts))

            check()
        finally:
            runner.run(view.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(view.schema))))
            runner.run(view.conn.commit())
            runner.run(view.close())
