"""`orchestrator acl apply|list`: the ACLs of infra/acls.toml on the broker, for the topic prefix."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import asdict

import orjson

from services.security import acls
from services.settings import Settings


def add_commands(commands) -> None:
    acl = commands.add_parser("acl", help="ACLs per principal on a secure broker (infra/acls.toml)").add_subparsers(
        metavar="ACTION"
    )
    apply = acl.add_parser(
        "apply",
        help="make the ACLs on this topic prefix exactly those of the file (adds what is missing, removes the rest)",
    )
    apply.add_argument("--file", default=str(acls.DEFAULT_FILE), help="the ACL file (default infra/acls.toml)")
    apply.add_argument("--dry-run", action="store_true", help="show the changes, make none")
    apply.set_defaults(run=cmd_acl_apply)
    listing = acl.add_parser("list", help="the ACLs in force on resources of this topic prefix")
    listing.add_argument("--json", action="store_true", help="one JSON object per ACL")
    listing.set_defaults(run=cmd_acl_list)


def _fail(error: Exception) -> int:
    print(f"orchestrator: {error}", file=sys.stderr)
    return 2 if isinstance(error, acls.AclFileError) else 1


def cmd_acl_apply(args, settings: Settings) -> int:
    from services.security.broker_acls import AclError, apply

    try:
        desired = acls.bindings(acls.load(args.file), settings.topic_prefix)
        changes = asyncio.run(apply(settings, desired, dry_run=args.dry_run))
    except (acls.AclFileError, AclError) as error:
        return _fail(error)
    for binding in changes.delete:
        print(f"- {binding}")
    for binding in changes.create:
        print(f"+ {binding}")
    verb = "would add" if args.dry_run else "added"
    print(
        f"{verb} {len(changes.create)}, {'would remove' if args.dry_run else 'removed'} {len(changes.delete)}, "
        f"{len(desired)} ACLs on {settings.topic_prefix}.* as declared in {args.file}"
    )
    return 0


def cmd_acl_list(args, settings: Settings) -> int:
    from services.security.broker_acls import AclError, in_force

    try:
        bindings = asyncio.run(in_force(settings))
    except AclError as error:
        return _fail(error)
    for binding in bindings:
        print(orjson.dumps(asdict(binding)).decode() if args.json else binding)
    return 0
