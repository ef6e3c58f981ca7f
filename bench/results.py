"""Benchmark results on disk: one JSON and one readable report per run, and regressions.

A run is compared with the latest earlier run of the same kind (same requested rate, or
both `max`, the same Faust fetch, client linger and off-path niceness settings, and the same
end of routing latency) on the same machine (same CPU model, core count and memory), never
with figures from elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.pipeline.observer import HOPS, LATENCY_ENDS_BEFORE

# (figure, path into the result, True when higher is better)
WATCHED = (
    ("tasks_per_minute", ("tasks_per_minute",), True),
    ("routing p99 ms", ("routing_latency_ms", "p99"), False),
    ("replay events/s", ("replay_events_per_second",), True),
    ("efficiency", ("efficiency",), True),
)
# Latencies of a few milliseconds jitter by more than any ratio: this much is never a regression.
LATENCY_SLACK_MS = 2.0


@dataclass(frozen=True)
class Regression:
    figure: str
    previous: float
    current: float

    def __str__(self) -> str:
        return f"{self.figure}: {self.previous:g} -> {self.current:g}"


def machine_key(machine: dict) -> tuple:
    return machine.get("cpu"), machine.get("cores"), machine.get("memory_gib")


# Results from before the fetch and linger settings existed were all taken with these values.
FETCH_BEFORE_SETTINGS = {"min_bytes": 1, "max_wait_ms": 100}
LINGER_BEFORE_SETTING = 5
NICE_BEFORE_SETTING = 0
# What makes two runs comparable besides the machine and the rate, each with the value that
# results from before the field was recorded were taken with.
CONDITIONS = {
    "fetch": FETCH_BEFORE_SETTINGS,
    "client_linger_ms": LINGER_BEFORE_SETTING,
    "off_path_nice": NICE_BEFORE_SETTING,
    "routing_latency_ends": LATENCY_ENDS_BEFORE,
    # Before it existed, the router's submissions and the balancer's inbox were batch readers too.
    "prompt_fetch_max_wait_ms": None,
}


def same_kind(a: dict, b: dict) -> bool:
    return (
        machine_key(a.get("machine", {})) == machine_key(b.get("machine", {}))
        and str(a.get("requested_rate")) == str(b.get("requested_rate"))
        and all(a.get(name, before) == b.get(name, before) for name, before in CONDITIONS.items())
    )


def _figure(result: dict, path: tuple[str, ...]) -> float | None:
    value = result
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return float(value) if isinstance(value, (int, float)) else None


def regressions(current: dict, previous: dict, tolerance: float) -> list[Regression]:
    """Figures of `current` worse than `previous` by more than `tolerance` (a fraction)."""
    found = []
    for name, path, higher_is_better in WATCHED:
        now, before = _figure(current, path), _figure(previous, path)
        if now is None or before is None or before == 0:
            continue
        if higher_is_better:
            worse = now < before * (1 - tolerance)
        else:
            worse = now > before * (1 + tolerance) and now - before > LATENCY_SLACK_MS
        if worse:
            found.append(Regression(name, before, now))
    return found


def previous_result(directory: Path, current: dict) -> dict | None:
    """The latest earlier result of the same kind on the same machine."""
    earlier = []
    for path in directory.glob("pipeline-*.json"):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if same_kind(result, current) and result.get("finished_at", "") < current.get("finished_at", ""):
            earlier.append(result)
    return max(earlier, key=lambda r: r["finished_at"], default=None)


def save(directory: Path, result: dict) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kind = "max" if result.get("requested_rate") == "max" else f"{result.get('requested_rate')}per_s"
    base = directory / f"pipeline-{stamp}-{kind}"
    json_path, report_path = base.with_suffix(".json"), base.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    report_path.write_text(report(result))
    return json_path, report_path


def report(result: dict) -> str:
    latency = result.get("routing_latency_ms", {})
    machine = result.get("machine", {})
    lines = [
        f"# Whole-pipeline benchmark, {result.get('finished_at', '?')}",
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, "
        f"Python {machine.get('python')}, {machine.get('system')}",
        f"Load average when the run started: {result.get('load_average_at_start')}",
        f"Requested rate: {result.get('requested_rate')} tasks/s; measured over {result.get('duration_s')} s "
        f"after a {result.get('warmup_s')} s warm-up; {result.get('agents')} in-process agents",
        "Faust fetch: at least {min_bytes} bytes, waiting at most {max_wait_ms} ms".format(
            **result.get("fetch", FETCH_BEFORE_SETTINGS)
        )
        + (
            "; batch readers: at least {min_bytes} bytes, waiting at most {max_wait_ms} ms".format(
                **result["batch_fetch"]
            )
            if "batch_fetch" in result
            else ""
        )
        + (
            f", committing every {result['batch_commit_interval_ms']} ms"
            if "batch_commit_interval_ms" in result
            else ""
            if "batch_fetch" not in result
            else ", committing every batch"
        )
        + (
            f"; the router's submissions and the balancer's inbox answered at the first record, "
            f"waiting at most {result['prompt_fetch_max_wait_ms']} ms"
            if "prompt_fetch_max_wait_ms" in result
            else ""
        )
        + f"; clients linger {result.get('client_linger_ms', LINGER_BEFORE_SETTING)} ms"
        f"; off-path processors' niceness {result.get('off_path_nice', NICE_BEFORE_SETTING)}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| offered tasks/min | {result.get('offered_tasks_per_minute')} |",
        f"| completed tasks/min (sustained) | {result.get('tasks_per_minute')} |",
        f"| lag bounded | {result.get('lag_bounded')} {'; '.join(result.get('lag_verdict', []))} |",
        f"| routing latency ms, submission to assignment (p50 / p95 / p99 / p99.9) | "
        f"{latency.get('p50')} / {latency.get('p95')} / {latency.get('p99')} / {latency.get('p999')} "
        f"({result.get('routing_latency_samples')} tasks; "
        f"to the {result.get('routing_latency_ends', LATENCY_ENDS_BEFORE)}) |",
        *(
            [
                "| by hop, p50 / p99 ms: route; forward to the balancer's inbox; decide | "
                + "; ".join(f"{hops[hop].get('p50')} / {hops[hop].get('p99')}" for hop in HOPS)
                + " |"
            ]
            if (hops := result.get("routing_hops_ms"))
            else []
        ),
        f"| replay events/s (full replay of the run, {result.get('replay_events')} events) | "
        f"{result.get('replay_events_per_second')} |",
        f"| raw aiokafka produce -> consume msgs/s ({result.get('message_bytes')} B messages) | "
        f"{result.get('raw_kafka_msgs_per_second')} |",
        f"| pipeline events/s | {result.get('pipeline_events_per_second')} "
        f"({result.get('events_per_task')} events per task) |",
        *(
            [
                f"| deliveries per task (records handed to the processors, read or passed over) | {per_task} ("
                + ", ".join(f"{name} {n}" for name, n in result.get("deliveries_per_task_by_processor", {}).items())
                + ") |"
            ]
            if (per_task := result.get("deliveries_per_task")) is not None
            else []
        ),
        f"| efficiency (pipeline events/s over raw msgs/s) | {result.get('efficiency')} |",
        f"| read models: completed tasks of the run / completed on Kafka | "
        f"{result.get('read_model_completed')} / {result.get('completed_total')} "
        f"({'drained' if result.get('drained') else 'NOT drained within 180 s'}) |",
        f"| replay: Python CPU per event | {result.get('replay_python_cpu_us_per_event')} us |",
        "",
        "Largest backlog per stage during the measurement (records behind):",
        "",
        "| stage | max | at the end |",
        "|---|---|---|",
    ]
    for stage, lag in sorted(result.get("lag", {}).items()):
        lines.append(f"| {stage} | {lag.get('max')} | {lag.get('last')} |")
    lines += [
        "",
        "CPU and memory per process during the measurement:",
        "",
        "| process | CPU % of one core | CPU ms per completed task | RSS MiB (max) |",
        "|---|---|---|---|",
    ]
    for name, usage in sorted(result.get("processes", {}).items()):
        lines.append(
            f"| {name} | {usage.get('cpu_percent')} | {usage.get('cpu_ms_per_task')} | {usage.get('rss_mib_max')} |"
        )
    for name, top in sorted(result.get("profiles", {}).items()):
        lines += ["", f"Profile of {name} ({top['samples']} samples, {top.get('file')}), most self time:", ""]
        lines += [f"- {share:.1%} {frame}" for frame, share in top["self"]]
        if top.get("layers"):
            lines += [
                "",
                "by the innermost library running: "
                + ", ".join(f"{name} {share:.1%}" for name, share in top["layers"].items()),
            ]
    if result.get("rate_search"):
        lines += ["", "Rate search (tasks/s: sustained?):", ""]
        lines += [f"- {t['rate']}: {t['sustained']} {'; '.join(t.get('reasons', []))}" for t in result["rate_search"]]
    lines += [
        "",
        f"Regressions against the previous run of this kind here: {'; '.join(result.get('regressions', [])) or 'none'}",
        "",
    ]
    return "\n".join(lines)
