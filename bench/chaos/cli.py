"""`orchestrator chaos`: a seeded fault run with its table of faults and invariants."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench.chaos.run import ChaosOptions, run, table
from bench.cli import interrupted, positive
from bench.machine import describe


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
    result["machine"] = describe()
    result["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    saved = save(Path(settings.bench.results_dir), result)
    print(json.dumps(result, indent=2) if args.json else table(result))
    print(f"chaos: wrote {saved}", file=sys.stderr)
    return 1 if result["violations"] else 0


def save(directory: Path, result: dict) -> Path:
    """The run's result beside the benchmarks' (`BENCH_RESULTS_DIR`): its table and its JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = directory / f"chaos-{stamp}-{result['brokers']}brokers-seed{result['seed']}"
    base.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    machine = result["machine"]
    heading = (
        f"# Chaos run, {result['finished_at']}\n\nMachine: {machine.get('cpu')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_gib')} GiB, Python {machine.get('python')}; {result['brokers']} broker(s), "
        f"{result['copies']} copies of every processor, {result['rate']:g} tasks/s for {result['duration_s']:g} s, "
        f"seed {result['seed']}\n\n"
    )
    base.with_suffix(".md").write_text(heading + table(result) + "\n")
    return base.with_suffix(".json")
