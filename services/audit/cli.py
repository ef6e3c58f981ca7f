"""Commands of the audit area: `audit verify`, `db roles`."""

from __future__ import annotations

import asyncio
import sys

import orjson

from services.settings import Settings


def add_commands(commands) -> None:
    audit = commands.add_parser("audit", help="the hash-chained audit log").add_subparsers(metavar="ACTION")
    verify = audit.add_parser("verify", help="check the chain and its signed checkpoints; exit 1 if tampered")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument(
        "--against-kafka",
        action="store_true",
        help="also compare every row with the record still on the broker at its position",
    )
    verify.set_defaults(run=cmd_audit_verify)

    db = commands.add_parser("db", help="PostgreSQL administration").add_subparsers(metavar="ACTION")
    roles = db.add_parser(
        "roles", help="create the least-privilege roles and grants (re-runnable), connecting as DATABASE_URL"
    )
    roles.add_argument("--json", action="store_true", help="print what was granted as JSON")
    roles.set_defaults(run=cmd_db_roles)


def print_result(data, as_json: bool, text: str) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() if as_json else text)


def cmd_audit_verify(args, settings: Settings) -> int:
    from services.audit.verify import AuditLogMissing, verify

    try:
        verdict = asyncio.run(verify(settings, against_kafka=args.against_kafka))
    except AuditLogMissing as error:
        print(f"orchestrator: {error}", file=sys.stderr)
        return 2
    print_result(verdict.as_json(), args.json, verdict.as_text())
    return 0 if verdict.ok else 1


def cmd_db_roles(args, settings: Settings) -> int:
    from services.audit.roles import apply_roles

    applied = asyncio.run(apply_roles(settings))
    print_result(applied.as_json(), args.json, applied.as_text())
    return 0
