"""`orchestrator bench`: the whole pipeline under load, with a result on disk and regressions flagged."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
from pathlib import Path

from bench import results
from bench.pipeline.run import BenchOptions, run


def rate(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of tasks per second or 'max', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the rate must be positive, got {text!r}")
    return value


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def add_commands(commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="drive the whole pipeline at a steady rate and measure it "
        "(throughput, routing latency, lag, CPU, replay rate, raw Kafka ceiling)",
    )
    bench.add_argument("--duration", type=positive, default=60.0, help="seconds measured (default 60)")
    bench.add_argument(
        "--warmup", type=positive, default=15.0, help="seconds at the rate before measuring (default 15)"
    )
    bench.add_argument(
        "--rate",
        type=rate,
        default=167.0,
        help="tasks submitted per second, or 'max' to find the sustainable maximum first "
        "(default 167, i.e. 10,000 a minute)",
    )
    bench.add_argument("--agents", type=int, default=20, help="in-process agents (default 20, 64 slots each)")
    bench.add_argument("--trial", type=positive, default=20.0, help="seconds per step of --rate max (default 20)")
    bench.add_argument("--start-rate", type=positive, default=100.0, help="first step of --rate max (default 100)")
    bench.add_argument(
        "--raw-messages", type=int, default=100_000, help="messages for the raw aiokafka ceiling (default 100000)"
    )
    bench.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="py-spy every processor this long during the measurement; top frames in the report "
        "(needs py-spy, run as root or with ptrace allowed)",
    )
    bench.add_argument("--keep", action="store_true", help="keep the run's topics and schemas")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    bench.set_defaults(run=cmd_bench)


def interrupted(signum, frame):
    raise KeyboardInterrupt  # unwinds like Ctrl-C: the processors the run started are stopped


def cmd_bench(args, settings) -> int:
    if args.profile and shutil.which("py-spy") is None:  # said now, not after the warm-up
        print("orchestrator bench: --profile needs py-spy on the PATH: pip install py-spy", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, interrupted)
    options = BenchOptions(
        duration_s=args.duration,
        warmup_s=args.warmup,
        rate=args.rate,
        agents=args.agents,
        trial_s=args.trial,
        start_rate=args.start_rate,
        raw_messages=args.raw_messages,
        keep=args.keep,
        profile_s=args.profile,
    )
    result = asyncio.run(run(settings, options, log=lambda line: print(line, file=sys.stderr, flush=True)))
    directory = Path(settings.bench.results_dir)
    previous = results.previous_result(directory, result)
    found = results.regressions(result, previous, settings.bench.regression_tolerance) if previous else []
    result["regressions"] = [str(r) for r in found]
    result["compared_with"] = previous.get("finished_at") if previous else None
    json_path, report_path = results.save(directory, result)
    print(json.dumps(result, indent=2) if args.json else results.report(result))
    print(f"bench: wrote {json_path} and {report_path}", file=sys.stderr)
    for regression in found:
        print(f"bench: REGRESSION {regression} (previous run {result['compared_with']})", file=sys.stderr)
    return 0
