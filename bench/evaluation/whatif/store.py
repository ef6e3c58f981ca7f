"""`whatif_runs`: each run's estimates, one row per policy, for analysts."""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.evaluation.whatif.decisions import LoggedDecision
from bench.evaluation.whatif.report import PolicyResult, logged_value
from projections.migrate import migrate

COLUMNS = (
    "run_id",
    "policy",
    "ran_at",
    "since",
    "until",
    "decisions",
    "logged_success",
    "ips",
    "ips_low",
    "ips_high",
    "snips",
    "snips_low",
    "snips_high",
    "dr",
    "dr_low",
    "dr_high",
    "effective_sample_size",
    "unsupported",
    "skipped",
)


def rows(
    run_id: uuid.UUID,
    ran_at: datetime,
    since: datetime | None,
    until: datetime | None,
    decisions: list[LoggedDecision],
    results: list[PolicyResult],
    skipped: dict[str, int],
) -> list[tuple]:
    out = []
    for result in results:
        r = result.as_json()
        out.append(
            (
                run_id,
                r["policy"],
                ran_at,
                since,
                until,
                r["decisions"],
                _number(logged_value(decisions)),
                *(r[name][part] for name in ("ips", "snips", "dr") for part in ("value", "low", "high")),
                r["effective_sample_size"] or 0.0,
                r["unsupported"] or 0.0,
                Jsonb(dict(skipped)),
            )
        )
    return out


async def save(database_url: str, schema: str, table_rows: list[tuple]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await migrate(conn, schema)  # a fresh database may not have met the projector yet
        async with conn.transaction():
            cur = conn.cursor()
            await cur.executemany(
                sql.SQL("INSERT INTO {}.whatif_runs ({}) VALUES ({})").format(
                    sql.Identifier(schema),
                    sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                    sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
                ),
                table_rows,
            )


def _number(value: float) -> float | None:
    return None if value != value else round(value, 6)  # NaN: no decisions
