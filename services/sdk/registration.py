"""The agent's declaration, checked completely before anything is sent."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from events.agents import AgentRegistered
from events.values import Capability, MemoryProfile
from services.sdk.capacity import MAX_CAPACITY

try:
    SDK_VERSION = importlib.metadata.version("agent-orchestrator")
except importlib.metadata.PackageNotFoundError:
    SDK_VERSION = "0.0.0+source"

_ERRORS_SHOWN = 5


class InvalidAgent(ValueError):
    pass


def readable(error: ValidationError) -> str:
    errors = error.errors(include_url=False)
    parts = []
    for item in errors[:_ERRORS_SHOWN]:
        loc = ".".join(str(part) for part in item["loc"])
        where = f"{loc}: " if loc else ""
        shown = item.get("input")
        got = "" if isinstance(shown, (dict, list, tuple)) or item["type"] == "missing" else f" (got {shown!r:.60})"
        parts.append(f"{where}{item['msg']}{got}")
    if len(errors) > _ERRORS_SHOWN:
        parts.append(f"and {len(errors) - _ERRORS_SHOWN} more")
    return "; ".join(parts)


def declaration(
    *,
    agent_id: str,
    capabilities: Iterable[Capability | Mapping],
    capacity: int,
    display_name: str | None = None,
    capacity_per_capability: Mapping[str, int] | None = None,
    cost_per_task: float = 0.0,
    labels: Mapping[str, str] | None = None,
    memory_profile: MemoryProfile | Mapping | None = None,
) -> AgentRegistered:
    """The AgentRegistered body, or InvalidAgent naming every problem found."""
    if isinstance(capacity, int) and capacity > MAX_CAPACITY:
        raise InvalidAgent(
            f"agent {agent_id}: capacity {capacity} is above {MAX_CAPACITY}, the most one "
            "agent process runs at once; run more processes instead"
        )
    try:
        return AgentRegistered(
            agent_id=agent_id,
            display_name=display_name or agent_id,
            capabilities=tuple(capabilities),
            capacity=capacity,
            capacity_per_capability=dict(capacity_per_capability or {}),
            cost_per_task=cost_per_task,
            labels=dict(labels or {}),
            memory_profile=memory_profile,
            sdk_version=SDK_VERSION,
        )
    except ValidationError as error:
        raise InvalidAgent(f"agent {agent_id}: invalid declaration: {readable(error)}") from None
    except TypeError as error:  # e.g. capabilities that are not a sequence
        raise InvalidAgent(f"agent {agent_id}: invalid declaration: {error}") from None
