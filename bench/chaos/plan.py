"""Which faults a chaos run injects, and when: a pure, seeded plan.

The same `--seed`, duration and fault count give the same plan, so a run that found a
violation can be repeated fault for fault.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PROCESSORS = ("router", "balancer", "health", "learner", "projector", "audit")
# Faults on the infrastructure; `kill-copy:<processor>` and `kill-both:<processor>` are added per processor.
INFRASTRUCTURE = ("kill-agent", "hang-agent", "pause-broker", "kill-broker", "restart-postgres")
# Faults are spread over this part of the run: the start lets the pipeline come up, the end lets the
# last fault's effect show before the load stops.
FIRST_AT, LAST_AT = 0.1, 0.8


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the load started
    kind: str  # e.g. "kill-copy", "pause-broker"
    target: str  # a processor, "agents-a", "broker-2", "postgres"
    hold_s: float  # how long the fault lasts before the restart, the SIGCONT or the agent's return

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.target}"


def kinds(processors=PROCESSORS, infrastructure=INFRASTRUCTURE, brokers: int = 1) -> list[tuple[str, str]]:
    """Every (kind, target) a run can inject: one copy, then both copies, of each processor kind; each
    broker paused and killed; the rest."""
    targets = {
        "kill-agent": ["agents-a"],
        "hang-agent": ["agents-b"],
        "pause-broker": [f"broker-{n}" for n in range(1, brokers + 1)],
        "kill-broker": [f"broker-{n}" for n in range(1, brokers + 1)],
        "restart-postgres": ["postgres"],
    }
    return (
        [("kill-copy", p) for p in processors]
        + [("kill-both", p) for p in processors]
        + [(k, t) for k in infrastructure for t in targets[k]]
    )


def plan(duration_s: float, faults: int, seed: int, menu: list[tuple[str, str]] | None = None) -> list[Fault]:
    """`faults` faults at distinct times over the run, every kind of the menu before any kind twice.

    Faults do not overlap: each starts once the one before is over (its hold ended), so that
    the table can say which fault an invariant broke under; piled-up load is what the load is for.
    """
    if faults < 0:
        raise ValueError("the number of faults must not be negative")
    rng = random.Random(seed)
    menu = list(menu or kinds())
    order: list[tuple[str, str]] = []
    while len(order) < faults:
        round_ = menu[:]
        rng.shuffle(round_)
        order += round_
    order = order[:faults]
    window = (LAST_AT - FIRST_AT) * duration_s
    slot = window / max(1, faults)
    planned = []
    for n, (kind, target) in enumerate(order):
        hold = round(max(1.0, rng.uniform(0.15, 0.5) * slot), 2)
        start = FIRST_AT * duration_s + n * slot + rng.uniform(0, max(0.0, slot - hold))
        planned.append(Fault(round(start, 2), kind, target, hold))
    return planned
