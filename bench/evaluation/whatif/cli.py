"""`orchestrator whatif`: its arguments and its output."""

from __future__ import annotations

import asyncio
import json
import sys

from bench.evaluation.whatif.command import DEFAULT_POLICIES, NoDecisionLog, whatif
from bench.evaluation.whatif.policies import PolicyError
from bench.evaluation.whatif.report import table


def add_commands(commands) -> None:
    from services.cli import _timestamp

    parser = commands.add_parser(
        "whatif",
        help="what other routing policies would have achieved on the decisions "
        "logged (IPS, self-normalised IPS, doubly robust, with 95%% intervals)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        dest="policies",
        default=[],
        metavar="SPEC",
        help="a policy to evaluate (repeatable): router[:k=v,...], greedy[:k=v,...], random, "
        f"best-single, agent:ID, file:PATH (default: {', '.join(DEFAULT_POLICIES)})",
    )
    parser.add_argument("--since", type=_timestamp, help="ISO timestamp: only decisions made from then on")
    parser.add_argument("--until", type=_timestamp, help="ISO timestamp: only decisions made before then")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per interval (default 1000)")
    parser.add_argument("--no-store", action="store_true", help="do not write the run into whatif_runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(run=cmd_whatif)


def cmd_whatif(args, settings) -> int:
    if args.resamples < 10:
        return _refused("--resamples must be at least 10")
    try:
        run = asyncio.run(
            whatif(
                settings,
                args.policies,
                since=args.since,
                until=args.until,
                resamples=args.resamples,
                store=not args.no_store,
            )
        )
    except (PolicyError, NoDecisionLog) as error:
        return _refused(str(error))
    if args.json:
        print(json.dumps(run.as_json(), indent=2))
    elif not run.decisions:
        print(
            "no logged decision with an assignment of known probability and an outcome in that window"
            + "".join(f"; {n} {why}" for why, n in sorted(run.skipped.items())),
            file=sys.stderr,
        )
    else:
        print(table(run.results, run.decisions, run.skipped))
    return 0


def _refused(why: str) -> int:
    print(f"orchestrator whatif: {why}", file=sys.stderr)
    return 2
