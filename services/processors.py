"""The processors `orchestrator serve` runs: one row each, with what it needs to start.

Each `serve` imports its processor when called, so a command that starts one processor does
not load the others (Faust, River and the database drivers take seconds to import).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass

from services.settings import Settings


@dataclass(frozen=True)
class Processor:
    name: str
    serve: Callable[[Settings], int]
    # Off the routing path: the projector, learner and audit projector were measured to starve
    # the router and balancer of CPU on a loaded machine (at 167 tasks/s offered, 31-33/s
    # completed against 57/s when these yield). The health monitor stays on the path: its
    # verdicts on heartbeats must stay current, or a lagging monitor would declare live agents
    # silent.
    on_routing_path: bool


def _router(settings: Settings) -> int:
    from services.router.bootstrap import serve

    return serve(settings)


def _balancer(settings: Settings) -> int:
    from services.balancer.bootstrap import serve

    return serve(settings)


def _health(settings: Settings) -> int:
    from services.health.bootstrap import serve

    return serve(settings)


def _learner(settings: Settings) -> int:
    from services.learner.bootstrap import serve

    return serve(settings)


def _projector(settings: Settings) -> int:
    from services.projector.bootstrap import serve

    asyncio.run(serve(settings))
    return 0


def _dashboard(settings: Settings) -> int:
    from services.dashboard.bootstrap import serve

    return serve(settings)


def _audit(settings: Settings) -> int:
    from services.audit.bootstrap import serve

    asyncio.run(serve(settings))
    return 0


PROCESSORS: dict[str, Processor] = {
    p.name: p
    for p in (
        Processor("projector", _projector, on_routing_path=False),
        Processor("health", _health, on_routing_path=True),
        Processor("router", _router, on_routing_path=True),
        Processor("balancer", _balancer, on_routing_path=True),
        Processor("learner", _learner, on_routing_path=False),
        Processor("audit", _audit, on_routing_path=False),
        Processor("dashboard", _dashboard, on_routing_path=False),
    )
}


def yield_cpu_if_off_path(processor: str, settings: Settings) -> int:
    """Lower this process's priority if `processor` is off the routing path; returns the increment."""
    increment = 0 if PROCESSORS[processor].on_routing_path else settings.off_path_nice
    if increment:
        os.nice(increment)
    return increment


def serve(processor: str, settings: Settings) -> int:
    yield_cpu_if_off_path(processor, settings)
    return PROCESSORS[processor].serve(settings)
