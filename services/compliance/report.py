"""`orchestrator compliance report`: one section per source of evidence, text or JSON.

Each source belongs to its own area (ACLs: services/security, retention and erasures:
services/privacy, security events: the identity read model, the audit chain: services/audit)
and may be missing in a given deployment or not reachable right now. A section says so
instead of failing, so the report always shows everything that can be known.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from services.privacy import erasure as privacy_erasure
from services.privacy import retention as privacy_retention
from services.security import broker_acls
from services.settings import Settings

log = logging.getLogger("orchestrator.compliance")
OK, ATTENTION, UNAVAILABLE = "ok", "attention", "unavailable"
RECENT_SECURITY_EVENTS = 50
# Kafka's SECURITY_DISABLED: the broker runs without an authorizer.
NO_AUTHORIZER_ERROR = "Kafka error 54"


@dataclass(frozen=True)
class Section:
    name: str
    status: str  # ok | attention | unavailable
    summary: str
    items: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"name": self.name, "status": self.status, "summary": self.summary, "items": self.items}


@dataclass(frozen=True)
class Report:
    generated_at: str
    sections: list[Section]

    @property
    def status(self) -> str:
        statuses = {s.status for s in self.sections}
        return ATTENTION if ATTENTION in statuses else (UNAVAILABLE if UNAVAILABLE in statuses else OK)

    def as_json(self) -> dict:
        return {
            "generated_at": self.generated_at,
            "status": self.status,
            "sections": {s.name: s.as_json() for s in self.sections},
        }

    def as_text(self) -> str:
        lines = [f"compliance report, {self.generated_at}: {self.status}"]
        for section in self.sections:
            lines += ["", f"== {section.name} [{section.status}]", section.summary]
            lines += [f"  {_line(item)}" for item in section.items]
        return "\n".join(lines)


def _line(item: dict) -> str:
    return "  ".join(f"{k}={v}" for k, v in item.items() if v not in (None, "", {}))


# --- pure: a section from what a source gave ---------------------------------------------


def unavailable(name: str, why: str) -> Section:
    return Section(name, UNAVAILABLE, f"not available: {why}")


def acl_section(bindings: list[dict] | None, *, plaintext: bool) -> Section:
    if bindings is None:
        return Section(
            "acls",
            OK if plaintext else ATTENTION,
            "plaintext profile: no ACLs (the broker has no authorizer)"
            if plaintext
            else "the broker has no authorizer although clients use SASL_SSL: nothing is enforced",
        )
    principals = Counter(b["principal"] for b in bindings)
    return Section(
        "acls",
        OK if bindings else ATTENTION,
        f"{len(bindings)} ACLs in force for {len(principals)} principals"
        + ("" if bindings else ": none, so only super users can do anything"),
        bindings,
    )


def retention_section(rows: list[dict]) -> Section:
    off = [r for r in rows if r.get("status") != "ok"]
    return Section(
        "retention",
        ATTENTION if off else OK,
        f"{len(rows)} topics and tables; " + (f"{len(off)} not as declared" if off else "all as declared"),
        rows,
    )


def erasure_section(rows: list[dict]) -> Section:
    erasures = {r["erasure_id"] for r in rows}
    return Section(
        "erasures",
        OK,
        f"{len(erasures)} erasures performed, {len(rows)} subject keys destroyed",
        [{k: _plain(v) for k, v in r.items()} for r in rows],
    )


def audit_section(verdict: dict) -> Section:
    if verdict["ok"]:
        summary = (
            f"chain intact: {verdict['rows_verified']} rows up to seq {verdict['head_seq']}, "
            f"{verdict['checkpoints']} signed checkpoints"
        )
        return Section("audit", OK, "; ".join([summary, *verdict["notes"]]))
    first = verdict["first_bad"]
    return Section(
        "audit",
        ATTENTION,
        f"TAMPERED: first bad position seq {first['seq']} "
        f"({first['position'] or 'position unknown'}): {first['kind']}, {first['detail']}",
        verdict["problems"],
    )


def security_events_section(counts: list[dict], recent: list[dict]) -> Section:
    total = sum(c["count"] for c in counts)
    by_kind = ", ".join(f"{c['kind']}: {c['count']}" for c in counts) or "none"
    violations = sum(c["count"] for c in counts if c["kind"] not in ("key_enrolled", "key_revoked"))
    return Section(
        "security_events",
        ATTENTION if violations else OK,
        f"{total} security events ({by_kind}); the {len(recent)} most recent below",
        [{k: _plain(v) for k, v in r.items()} for r in recent],
    )


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


# --- shells: one per source, each allowed to be missing ---------------------------------


async def acls(settings: Settings) -> Section:
    try:
        bindings = await broker_acls.in_force(settings)
    except broker_acls.AclError as error:
        if NO_AUTHORIZER_ERROR not in str(error):
            raise
        return acl_section(None, plaintext=settings.kafka_security_protocol == "PLAINTEXT")
    return acl_section(
        [
            {
                "principal": b.principal,
                "permission": b.permission,
                "operation": b.operation,
                "resource_type": b.resource_type,
                "pattern_type": b.pattern_type,
                "resource_name": b.resource_name,
                "host": b.host,
            }
            for b in bindings
        ],
        plaintext=settings.kafka_security_protocol == "PLAINTEXT",
    )


async def retention(settings: Settings) -> Section:
    return retention_section(await privacy_retention.retention_report(settings))


async def erasures(settings: Settings) -> Section:
    return erasure_section(await privacy_erasure.erasures(settings))


async def audit(settings: Settings) -> Section:
    from services.audit.verify import verify

    return audit_section((await verify(settings)).as_json())


async def security_events(settings: Settings) -> Section:
    table = sql.Identifier(settings.db_schema, "security_events")
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                sql.SQL("SELECT kind, count(*) AS count FROM {} GROUP BY kind ORDER BY kind").format(table)
            )
            counts = await cur.fetchall()
            await cur.execute(
                sql.SQL("SELECT occurred_at, kind, agent_id, detail FROM {} ORDER BY occurred_at DESC LIMIT %s").format(
                    table
                ),
                (RECENT_SECURITY_EVENTS,),
            )
            recent = await cur.fetchall()
    return security_events_section(counts, recent)


SOURCES: tuple[tuple[str, Callable[[Settings], Awaitable[Section]]], ...] = (
    ("acls", acls),
    ("retention", retention),
    ("erasures", erasures),
    ("audit", audit),
    ("security_events", security_events),
)


async def tolerant(name: str, source: Callable[[Settings], Awaitable[Section]], settings: Settings) -> Section:
    """The source's section, or one saying why it is not there: a report never fails on one source."""
    try:
        return await source(settings)
    except ModuleNotFoundError as error:
        return unavailable(name, f"{error.name} is not part of this installation")
    except psycopg.errors.UndefinedTable as error:
        return unavailable(name, f"its table does not exist yet ({str(error).splitlines()[0]})")
    except Exception as error:  # noqa: BLE001 - whatever a source raises, the other sections still count
        log.debug("compliance source %s failed", name, exc_info=True)
        return unavailable(name, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")


async def build_report(settings: Settings, sources=SOURCES, now: datetime | None = None) -> Report:
    now = now or datetime.now(timezone.utc)
    sections = [await tolerant(name, source, settings) for name, source in sources]
    return Report(now.isoformat(timespec="seconds").replace("+00:00", "Z"), sections)
