"""`orchestrator chaos`: a seeded fault run with its table of faults and invariants."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from bench.chaos.run import ChaosOptions, run, table
from bench.cli import interrupted, positive


def add_commands(commands) -> None:
    chaos = commands.add_parser(
        "chaos",
        help="run the pipeline under steady load with two copies of every processor, inject seeded faults "
        "(kill -9, hanging agents, broker pause and kill, PostgreSQL restart), then check every invariant",
    )
    chaos.add_argument("--duration", type=positive, default=120.0, help="seconds of load and faults (default 120)")
    chaos.add_argument("--faults", type=int, default=10, help="faults injected, one after another (default 10)")
    chaos.add_argument("--seed", type=int, default=1, help="seeds the plan of faults (default 1)")
    chaos.add_argument("--rate", type=positive, default=10.0, help="tasks submitted per second (default 10)")
    chaos.add_argument(
        "--processes-only",
        action="store_true",
        help="break only processes and agents: leave the broker and PostgreSQL alone",
    )
    chaos.add_argument(
        "--only",
        default="",
        metavar="KIND,...",
        help="draw faults from these kinds only: kill-copy, kill-both, kill-agent, hang-agent, pause-broker, "
        "kill-broker, restart-postgres",
    )
    chaos.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    chaos.set_defaults(run=cmd_chaos)


def cmd_chaos(args, settings) -> int:
    signal.signal(signal.SIGTERM, interrupted)
    options = ChaosOptions(
        duration_s=args.duration,
        faults=args.faults,
        seed=args.seed,
        rate=args.rate,
        infrastructure=not args.processes_only,
        only=tuple(k for k in args.only.split(",") if k),
    )
    result = asyncio.run(run(settings, options, log=lambda line: print(line, file=sys.stderr, flush=True)))
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 1 if result["violations"] else 0
