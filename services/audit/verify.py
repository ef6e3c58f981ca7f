"""`orchestrator audit verify`: the chain in PostgreSQL against itself and its signed checkpoints."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from services.audit import checkpoints
from services.audit.chain import ChainCheck, Problem
from services.audit.crosscheck import CrossCheck, read_broker
from services.audit.store import read_rows
from services.settings import Settings


class AuditLogMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Verdict:
    chain: str
    rows: int
    head_seq: int
    head_hash: str
    checkpoints: int
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def as_json(self) -> dict:
        first = self.first
        return {
            "chain": self.chain,
            "ok": self.ok,
            "rows_verified": self.rows,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoints": self.checkpoints,
            "notes": self.notes,
            "first_bad": _problem_json(first) if first else None,
            "problems": [_problem_json(p) for p in self.problems],
        }

    def as_text(self) -> str:
        lines = [
            f"audit chain {self.chain}: {self.rows} rows verified up to seq {self.head_seq}, "
            f"{self.checkpoints} signed checkpoint(s)"
        ]
        lines += [f"note: {n}" for n in self.notes]
        if self.ok:
            lines.append("OK: the chain is intact and matches its checkpoints")
        else:
            lines.append(f"TAMPERED: first bad position: {self.first.describe()}")
            lines += [f"  also: {p.describe()}" for p in self.problems[1:]]
        return "\n".join(lines)


def _problem_json(problem: Problem) -> dict:
    return {"seq": problem.seq, "kind": problem.kind, "position": problem.position, "detail": problem.detail}


def judge(
    chain_name: str,
    chain: ChainCheck,
    found: list[tuple[str, checkpoints.Checkpoint | None]],
    public_key,
    against_kafka: CrossCheck | None = None,
) -> Verdict:
    """The verdict from a walked chain, the checkpoints found and, if asked for, the broker: pure."""
    problems = ([chain.problem] if chain.problem else []) + checkpoints.check_against(chain, found, public_key)
    notes = [] if found else ["no signed checkpoint yet: a cut-off tail cannot be detected"]
    if against_kafka is not None:
        problems += against_kafka.finish()
        notes.append(f"compared with {len(against_kafka.broker.digests)} records on the broker")
    return Verdict(
        chain_name,
        chain.rows,
        chain.head.seq,
        chain.head.hash.hex(),
        sum(1 for _, c in found if c is not None),
        sorted(problems, key=lambda p: p.seq),
        notes,
    )


async def verify(
    settings: Settings, *, against_kafka: bool = False, conn: psycopg.AsyncConnection | None = None
) -> Verdict:
    """Walk the chain on `conn` if given (the dashboard's, as the analyst), else on AUDIT_DATABASE_URL."""
    schema = settings.audit.db_schema
    # The broker first: a row appended after it was read is beyond what it is compared with.
    crosscheck = CrossCheck(await read_broker(settings)) if against_kafka else None
    directory = Path(settings.audit.checkpoint_dir)
    found = checkpoints.read_all(directory, schema) if directory.exists() else []
    key_file = Path(settings.audit.signing_key_file)
    public_key = checkpoints.load_public_key(key_file) if checkpoints.public_key_path(key_file).exists() else None
    if found and public_key is None:
        raise FileNotFoundError(f"checkpoints found but no public key at {checkpoints.public_key_path(key_file)}")
    watch = {c.last_seq for _, c in found if c is not None}
    chain = ChainCheck(watch=frozenset(watch))
    async with _connection(settings, conn) as conn, conn.transaction():
        # One snapshot: rows a running writer appends meanwhile are simply not part of this check.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur = await conn.execute("SELECT to_regclass(%s)", (f'"{schema}".audit_log',))
        if (await cur.fetchone())[0] is None:
            raise AuditLogMissing(
                f"no audit_log in schema {schema!r} (AUDIT_DB_SCHEMA); run `orchestrator serve audit`"
            )
        async for row in read_rows(conn, schema):
            chained = chain.feed(row)  # judges nothing after its first problem
            if crosscheck is None and not chained:
                break
            if crosscheck is not None:
                crosscheck.feed(row)  # the comparison with the broker covers every row
    return judge(schema, chain, found, public_key, crosscheck)


@contextlib.asynccontextmanager
async def _connection(settings: Settings, given: psycopg.AsyncConnection | None):
    if given is not None:
        yield given
        return
    async with await psycopg.AsyncConnection.connect(settings.audit_url) as conn:
        yield conn
