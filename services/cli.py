"""The `orchestrator` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import datetime

import orjson

from bench import cli as bench_cli
from bench.chaos import cli as chaos_cli
from bench.evaluation.whatif import cli as whatif_cli
from events.catalog import body_class
from events.codec import EventDecodeError, decode
from events.envelope import make_event
from events.topics import catalog_as_json_objects
from services import processors
from services.audit import cli as audit_cli
from services.compliance import cli as compliance_cli
from services.identity import cli as identity_cli
from services.privacy import cli as privacy_cli
from services.security import commands as security_commands
from services.settings import ConfigError, Settings, documented_variables


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for chatty in ("aiokafka", "kafka"):  # client chatter drowns the processors' own lines
            logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
        return args.run(args, settings) or 0
    except (ConfigError, UsageError, EventDecodeError) as error:
        print(f"orchestrator: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - a clear one-line error, not a traceback
        if isinstance(error, _EXPECTED):
            print(f"orchestrator: {error}", file=sys.stderr)
            return 1
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description=("Event-sourced agent orchestrator: topics, events, processors and read models."),
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    topics = commands.add_parser("topics", help="the topic catalog").add_subparsers(metavar="ACTION")
    ensure = topics.add_parser("ensure", help="create missing topics and check existing ones")
    ensure.set_defaults(run=cmd_topics_ensure)
    listing = topics.add_parser("list", help="print the catalog")
    listing.add_argument("--json", action="store_true", help="a JSON array of topic objects")
    listing.set_defaults(run=cmd_topics_list)
    partition = topics.add_parser("partition", help="which partition of a topic a key maps to")
    partition.add_argument("key", help="e.g. an agent id")
    partition.add_argument("--topic", default="assignments", help="logical topic name (default: assignments)")
    partition.set_defaults(run=cmd_topics_partition)

    publish = commands.add_parser("publish", help="validate and publish one hand-written event")
    publish.add_argument("file", nargs="?", default="-", help="JSON file, or - for standard input")
    publish.add_argument(
        "--type", dest="event_type", help="the JSON is only a body of this event type; the envelope is filled in"
    )
    publish.add_argument("--producer", help="producer recorded on the event (default ORCHESTRATOR_PRODUCER)")
    publish.set_defaults(run=cmd_publish)

    dlq = commands.add_parser("dlq", help="the dead-letter topic").add_subparsers(metavar="ACTION")
    dlq_list = dlq.add_parser("list", help="show parked messages")
    dlq_list.add_argument("--limit", type=int, help="show at most this many")
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq_list.set_defaults(run=cmd_dlq_list)
    dlq_replay = dlq.add_parser("replay", help="re-inject parked messages into their original topics")
    dlq_replay.add_argument(
        "--only",
        action="append",
        metavar="PARTITION:OFFSET",
        default=[],
        help="re-inject just this parked message (repeatable); default: all not yet re-injected",
    )
    dlq_replay.add_argument("--dry-run", action="store_true", help="show what would be re-injected")
    dlq_replay.set_defaults(run=cmd_dlq_replay)

    replay = commands.add_parser("replay", help="rebuild the read models from the earliest offsets")
    replay.add_argument("--until", type=_timestamp, help="ISO timestamp: only events that occurred up to then")
    replay.add_argument("--into", help="build into this schema and leave the live read models alone")
    replay.add_argument("--replace", action="store_true", help="overwrite the --into schema if it exists")
    replay.set_defaults(run=cmd_replay)

    serve = commands.add_parser("serve", help="run a processor until SIGTERM")
    serve.add_argument("processor", choices=list(processors.PROCESSORS), help="which processor")
    serve.set_defaults(run=cmd_serve)

    simulate = commands.add_parser("simulate", help="compare routing policies on a simulated fleet, on the real stack")
    simulate.add_argument(
        "--policies",
        default="random,round_robin,least_loaded,orchestrator",
        help="comma-separated policies to compare (default: all four)",
    )
    simulate.add_argument("--agents", type=int, default=12, help="simulated agents (default 12)")
    simulate.add_argument("--tasks", type=int, default=400, help="tasks per policy (default 400)")
    simulate.add_argument("--rate", type=float, default=40.0, help="tasks submitted per second (default 40)")
    simulate.add_argument("--seed", type=int, default=7, help="seed of the fleet and the task stream")
    simulate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    simulate.add_argument(
        "--learning",
        action="store_true",
        help="instead: the learner against the fleet's known "
        "skills (accuracy against the Bayes-optimal predictor, detection of a skill change)",
    )
    simulate.add_argument("--learning-tasks", type=int, default=6000, help="outcomes the learning report runs on")
    simulate.set_defaults(run=cmd_simulate)

    evaluate = commands.add_parser(
        "evaluate",
        help="replay a real outcome log through the running router, "
        "balancer and learner, and score routing and prediction",
    )
    evaluate.add_argument("--data", required=True, help="the outcome log (csv or csv.gz, one row per task and agent)")
    evaluate.add_argument(
        "--limit", type=int, default=2000, help="only the first N tasks in task_seq order (default 2000)"
    )
    evaluate.add_argument("--outstanding", type=int, default=50, help="most tasks submitted and not yet answered")
    evaluate.add_argument(
        "--cold-start-after",
        type=int,
        metavar="K",
        help="also replay twice with a newcomer joining after K tasks, into a fleet sharing its experience and one not",
    )
    evaluate.add_argument("--newcomer", help="the agent that joins late (default: the best single agent of the log)")
    evaluate.add_argument("--first", type=int, default=100, help="newcomer tasks the cold start looks at (default 100)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    evaluate.set_defaults(run=cmd_evaluate)

    # Each area below adds its own commands from its own module.
    # --- area commands ---
    privacy_cli.add_commands(commands)
    security_commands.add_commands(commands)
    audit_cli.add_commands(commands)
    compliance_cli.add_commands(commands)
    identity_cli.add_commands(commands)
    bench_cli.add_commands(commands)
    chaos_cli.add_commands(commands)
    whatif_cli.add_commands(commands)

    config = commands.add_parser("config", help="list every environment variable and its value")
    config.set_defaults(run=cmd_config)
    return parser


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-01-31T12:00:00Z")
    return value


# --- commands -----------------------------------------------------------------------


def cmd_topics_ensure(args, settings: Settings) -> int:
    from services.kafka import ensure_topics

    checks = asyncio.run(ensure_topics(settings))
    for check in checks:
        print(f"{check.action:9} {check.name}" + (f"  ({check.detail})" if check.detail else ""))
    return 1 if any(c.action == "mismatch" for c in checks) else 0


def cmd_topics_list(args, settings: Settings) -> int:
    catalog = catalog_as_json_objects(settings.topic_prefix)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(catalog, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    for topic in catalog:
        retention = "forever" if topic["retention_ms"] == -1 else f"{topic['retention_ms'] // 3_600_000}h"
        print(
            f"{topic['name']:32} key={topic['key']:13} partitions={topic['partitions']} "
            f"retention={retention:8} {', '.join(topic['events']) or '(dead letters)'}"
        )
    return 0


def cmd_topics_partition(args, settings: Settings) -> int:
    from events.topics import TOPICS
    from services.kafka import partition_for_key

    spec = next((t for t in TOPICS if t.name == args.topic), None)
    if spec is None:
        raise UsageError(f"no topic {args.topic!r}; see `orchestrator topics list`")
    print(partition_for_key(args.key, spec.partitions))
    return 0


def cmd_publish(args, settings: Settings) -> int:
    from services import kafka

    raw = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    producer_name = args.producer or settings.producer_name
    if args.event_type:
        try:
            body = body_class(args.event_type).model_validate_json(raw)
        except ValueError as error:
            raise UsageError(f"invalid {args.event_type} body: {error}") from None
        event = make_event(body, producer=producer_name)
    else:
        event = decode(raw)

    async def send():
        producer = kafka.producer(settings)
        await kafka.start(producer, settings)
        try:
            return await kafka.publish(producer, settings, event)
        finally:
            await producer.stop()

    meta = asyncio.run(send())
    print(f"published {event.event_type} {event.event_id} to {meta.topic}[{meta.partition}]@{meta.offset}")
    return 0


def cmd_dlq_list(args, settings: Settings) -> int:
    from services.deadletter.reinject import read_parked

    parked = asyncio.run(read_parked(settings, limit=args.limit))
    for item in parked:
        if args.json:
            print(
                orjson.dumps(
                    {
                        "partition": item.partition,
                        "offset": item.offset,
                        "origin_topic": item.origin_topic,
                        "origin_partition": item.origin_partition,
                        "origin_offset": item.origin_offset,
                        "error_class": item.error_class,
                        "error_message": item.error_message,
                        "attempt": item.attempt,
                        "processor": item.processor,
                        "failed_at": item.failed_at,
                        "key": (item.key or b"").decode(errors="replace"),
                        "value": (item.value or b"").decode(errors="replace"),
                    }
                ).decode()
            )
        else:
            print(
                f"{item.partition}:{item.offset}  {item.origin_topic}[{item.origin_partition}]@"
                f"{item.origin_offset}  attempt {item.attempt}  {item.error_class}: {item.error_message[:120]}"
            )
    if not args.json:
        print(f"{len(parked)} parked message(s)", file=sys.stderr)
    return 0


def cmd_dlq_replay(args, settings: Settings) -> int:
    from services.deadletter.reinject import replay_parked

    only = set()
    for item in args.only:
        try:
            partition, offset = item.split(":")
            only.add((int(partition), int(offset)))
        except ValueError:
            raise UsageError(f"--only wants PARTITION:OFFSET, got {item!r}") from None
    chosen = asyncio.run(replay_parked(settings, only=only or None, dry_run=args.dry_run))
    verb = "would re-inject" if args.dry_run else "re-injected"
    for item in chosen:
        print(f"{verb} {item.partition}:{item.offset} -> {item.origin_topic} (attempt {item.attempt})")
    print(f"{verb} {len(chosen)} message(s)", file=sys.stderr)
    return 0


def cmd_replay(args, settings: Settings) -> int:
    from services.replay import replay

    report = asyncio.run(replay(settings, until=args.until, into=args.into, replace=args.replace))
    where = "swapped into the live schema" if report.swapped else "left in its own schema"
    print(
        f"replayed {report.events} events ({report.rejected} unusable) into {report.schema} in "
        f"{report.seconds:.1f}s, {report.events_per_second:,.0f} events/s; {where}"
    )
    return 0


def cmd_serve(args, settings: Settings) -> int:
    return processors.serve(args.processor, settings)


def cmd_simulate(args, settings: Settings) -> int:
    if args.learning:
        from bench.evaluation.simulator.learning import fleet_table, learning_table, run_large_fleet, run_learning

        figures = run_learning(agents=args.agents, tasks=args.learning_tasks, seed=args.seed)
        fleet = run_large_fleet(seed=args.seed)  # beside today's regime: many agents, few outcomes
        print(
            orjson.dumps({"learning": figures.as_dict(), "large_fleet": fleet.as_dict()}).decode()
            if args.json
            else learning_table(figures) + "\n\n" + fleet_table(fleet)
        )
        return 0
    from bench.evaluation.simulator.run import simulate, table

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    results = asyncio.run(
        simulate(
            settings,
            policies=policies,
            agents=args.agents,
            tasks=args.tasks,
            rate=args.rate,
            seed=args.seed,
            log=_to_stderr,
        )
    )
    if args.json:
        print(orjson.dumps({"policies": {name: r.as_dict() for name, r in results.items()}}).decode())
    else:
        print(table(results))
    return 0


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_evaluate(args, settings: Settings) -> int:
    from bench.evaluation.online import evaluate, report
    from bench.evaluation.outcome_log import LogFormatError

    try:
        result = asyncio.run(
            evaluate(
                settings,
                args.data,
                limit=args.limit,
                outstanding=args.outstanding,
                log=_to_stderr,
                cold_start_after=args.cold_start_after,
                newcomer=args.newcomer,
                first=args.first,
            )
        )
    except LogFormatError as error:
        raise UsageError(str(error)) from None
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if args.json else report(result))
    return 0


def cmd_config(args, settings: Settings) -> int:
    for name, default, doc in documented_variables():
        print(f"{name}={os.environ.get(name, default)}\t# {doc}")
    return 0


def _expected_errors() -> tuple[type[BaseException], ...]:
    from services.kafka import KafkaUnavailable
    from services.projector.bootstrap import DatabaseUnavailable
    from services.replay import ReplayError

    return (KafkaUnavailable, DatabaseUnavailable, ReplayError, FileNotFoundError)


_EXPECTED = _expected_errors()

if __name__ == "__main__":
    sys.exit(main())
