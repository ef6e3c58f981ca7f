"""Commands of the privacy area: `task submit` with sealed fields, `privacy erase|erasures`,
`retention report|apply`."""

from __future__ import annotations

import asyncio
import functools
import sys
from uuid import uuid4

import orjson
from pydantic import ValidationError

from events.envelope import make_event
from events.tasks import TaskSubmitted
from events.values import CapabilityRequirement
from services.privacy.retention import retention_text
from services.settings import Settings


class CommandError(ValueError):
    pass


def add_commands(commands) -> None:
    task = commands.add_parser("task", help="submit tasks").add_subparsers(metavar="ACTION")
    submit = task.add_parser(
        "submit", help="submit a task, sealing its sensitive payload fields before they reach Kafka"
    )
    submit.add_argument(
        "--require",
        action="append",
        required=True,
        metavar="CAPABILITY[:MIN]",
        help="a required capability, optionally with a minimum proficiency (repeatable)",
    )
    submit.add_argument("--payload", metavar="FILE", help="JSON object of the payload, or - for standard input")
    submit.add_argument(
        "--sensitive",
        action="append",
        default=[],
        metavar="FIELD[=SUBJECT]",
        help="seal this payload field with the key of its data subject (repeatable)",
    )
    submit.add_argument("--subject", help="data subject of every --sensitive field not given its own")
    submit.add_argument("--task-id", help="default: a fresh task-<random> id")
    submit.add_argument("--priority", type=int, default=5, help="0 (most urgent) to 9, default 5")
    submit.add_argument("--submitter", help="default ORCHESTRATOR_PRODUCER")
    submit.set_defaults(run=_clear_errors(cmd_task_submit))

    privacy = commands.add_parser("privacy", help="data subjects: erasure by crypto-shredding").add_subparsers(
        metavar="ACTION"
    )
    erase = privacy.add_parser(
        "erase", help="destroy a data subject's key(s), so what they sealed is unreadable for good"
    )
    erase.add_argument("subject", help="the data subject's id, as given to --subject when sealing")
    erase.add_argument(
        "--reason",
        default="subject-request",
        help="subject-request (default), consent-withdrawn, retention-expired, legal-obligation or other",
    )
    erase.add_argument("--by", help="operator recorded as erased_by (default ORCHESTRATOR_PRODUCER)")
    erase.set_defaults(run=_clear_errors(cmd_privacy_erase))
    listing = privacy.add_parser("erasures", help="erasures performed, from the read models (no personal data)")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    listing.set_defaults(run=_clear_errors(cmd_privacy_erasures))

    retention = commands.add_parser("retention", help="declared retention of topics and tables").add_subparsers(
        metavar="ACTION"
    )
    report = retention.add_parser("report", help="declared vs actual retention of every topic and table")
    report.add_argument("--json", action="store_true", help="a JSON array")
    report.set_defaults(run=_clear_errors(cmd_retention_report))
    apply = retention.add_parser("apply", help="prune table rows past their declared retention")
    apply.add_argument("--dry-run", action="store_true", help="count what would be pruned, delete nothing")
    apply.set_defaults(run=_clear_errors(cmd_retention_apply))


def _clear_errors(command):
    """One line on stderr for the errors a user can act on, not a traceback."""

    @functools.wraps(command)
    def run(args, settings: Settings) -> int:
        from services.privacy.erasure import ErasuresUnavailable
        from services.privacy.keystore import KeyStoreUnavailable
        from services.privacy.retention import RetentionUnavailable
        from services.privacy.sealing import SealingError

        try:
            return command(args, settings)
        except (CommandError, SealingError, ValueError) as error:
            print(f"orchestrator: {error}", file=sys.stderr)
            return 2
        except (KeyStoreUnavailable, ErasuresUnavailable, RetentionUnavailable) as error:
            print(f"orchestrator: {error}", file=sys.stderr)
            return 1

    return run


# --- pure parsing ---------------------------------------------------------------------


def parse_requirement(text: str) -> CapabilityRequirement:
    name, _, minimum = text.partition(":")
    try:
        return CapabilityRequirement(name=name, **({"min_proficiency": float(minimum)} if minimum else {}))
    except (ValidationError, ValueError):
        raise CommandError(f"--require wants CAPABILITY or CAPABILITY:MIN with MIN in [0, 1], got {text!r}") from None


def parse_sensitive(items: list[str], default_subject: str | None) -> dict[str, str]:
    """field -> subject id, from FIELD=SUBJECT items or FIELD items with --subject."""
    sensitive: dict[str, str] = {}
    for item in items:
        field, has_subject, subject = item.partition("=")
        subject = subject if has_subject else default_subject
        if not field or not subject:
            raise CommandError(f"--sensitive {item!r} names no data subject: write FIELD=SUBJECT or give --subject")
        if field in sensitive:
            raise CommandError(f"--sensitive names field {field!r} twice")
        sensitive[field] = subject
    if default_subject and not sensitive:
        raise CommandError("--subject without --sensitive: name the payload fields to seal")
    return sensitive


def read_payload(source: str | None) -> dict:
    if source is None:
        return {}
    raw = sys.stdin.buffer.read() if source == "-" else open(source, "rb").read()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise CommandError(f"--payload is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise CommandError(f"--payload must be a JSON object, got {type(payload).__name__}")
    return payload


# --- commands ---------------------------------------------------------------------------


def cmd_task_submit(args, settings: Settings) -> int:
    from services import kafka
    from services.privacy.client import seal_payload
    from services.privacy.keystore import KeyStore

    requirements = tuple(parse_requirement(r) for r in args.require)
    sensitive = parse_sensitive(args.sensitive, args.subject)
    payload = read_payload(args.payload)
    task_id = args.task_id or f"task-{uuid4().hex[:12]}"

    async def submit():
        sealed = payload
        if sensitive:
            async with await KeyStore.connect(settings) as keystore:
                sealed = await seal_payload(payload, task_id=task_id, sensitive=sensitive, keystore=keystore)
        try:
            body = TaskSubmitted(
                task_id=task_id,
                requirements=requirements,
                priority=args.priority,
                submitter=args.submitter or settings.producer_name,
                payload=sealed,
            )
        except ValidationError as error:
            raise CommandError(f"invalid task: {error.errors(include_url=False)[0]['msg']}") from None
        event = make_event(body, producer=settings.producer_name)
        producer = kafka.producer(settings)
        await kafka.start(producer, settings)
        try:
            return event, await kafka.publish(producer, settings, event)
        finally:
            await producer.stop()

    event, meta = asyncio.run(submit())
    sealed_note = f", sealed: {', '.join(sorted(sensitive))}" if sensitive else ""
    print(
        f"submitted {event.body.task_id} ({event.event_id}) to {meta.topic}[{meta.partition}]@{meta.offset}"
        f"{sealed_note}"
    )
    return 0


def cmd_privacy_erase(args, settings: Settings) -> int:
    from services.privacy.erasure import erase_subject

    report = asyncio.run(
        erase_subject(settings, args.subject, erased_by=args.by or settings.producer_name, reason=args.reason)
    )
    if report.destroyed:
        print(f"{report.erasure_id}: destroyed {len(report.destroyed)} key(s): {', '.join(report.destroyed)}")
    else:
        print("no key for this subject: nothing to destroy (never sealed for, or erased before)")
    for event in report.announced:
        print(f"announced SubjectErased for {event.body.key_id} ({event.body.erasure_id})")
    if report.not_scrubbed:
        print(
            f"orchestrator: the key is deleted, but its bytes may remain in a dead row of "
            f"{settings.keystore.schema}.subject_keys: {report.not_scrubbed}; run `orchestrator privacy erase` "
            "again (as the table's owner or a superuser) to finish",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_privacy_erasures(args, settings: Settings) -> int:
    from services.privacy.erasure import erasures

    rows = asyncio.run(erasures(settings))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    for row in rows:
        print(
            f"{row['erased_at']:%Y-%m-%dT%H:%M:%SZ}  {row['erasure_id']}  {row['key_id']}  "
            f"{row['reason']:18} by {row['erased_by']}"
        )
    print(f"{len(rows)} erased key(s)", file=sys.stderr)
    return 0


def cmd_retention_report(args, settings: Settings) -> int:
    from services.privacy.retention import retention_report

    rows = asyncio.run(retention_report(settings))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        for row in rows:
            actual = (
                retention_text(row["actual_retention_ms"])
                if row["kind"] == "topic"
                else f"{row['rows']} rows, oldest {_age(row['oldest_row_age_ms'])}"
                if row["rows"] is not None
                else "-"
            )
            print(
                f"{row['kind']:5} {row['name']:40} declared={retention_text(row['declared_retention_ms']):8} "
                f"actual={actual:28} {row['status']}" + (f"  ({row['detail']})" if row["detail"] else "")
            )
    return 0 if all(row["status"] == "ok" for row in rows) else 1


def cmd_retention_apply(args, settings: Settings) -> int:
    from services.privacy.retention import apply_retention

    for row in asyncio.run(apply_retention(settings, dry_run=args.dry_run)):
        verb = "would prune" if row["dry_run"] else "pruned"
        print(f"{row['table']}: {verb} {row['pruned']} row(s) older than {row['cutoff']}")
    return 0


def _age(age_ms: int | None) -> str:
    if age_ms is None:
        return "-"
    return f"{age_ms / 86_400_000:.1f}d" if age_ms >= 86_400_000 else f"{age_ms / 3_600_000:.1f}h"
