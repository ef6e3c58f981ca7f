"""Commands of the compliance area: `compliance report`.

Apart from the audit projector's commands: the report reads the key store's erasure records,
which no processor may reach.
"""

from __future__ import annotations

import asyncio

from services.audit.cli import print_result
from services.compliance.report import build_report
from services.settings import Settings


def add_commands(commands) -> None:
    compliance = commands.add_parser("compliance", help="compliance reporting").add_subparsers(metavar="ACTION")
    report = compliance.add_parser("report", help="ACLs, retention, erasures, audit verification, security events")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.set_defaults(run=cmd_compliance_report)


def cmd_compliance_report(args, settings: Settings) -> int:
    report = asyncio.run(build_report(settings))
    print_result(report.as_json(), args.json, report.as_text())
    return 0
