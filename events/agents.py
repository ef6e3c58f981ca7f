from typing import Annotated, Literal, Mapping

from pydantic import Field, model_validator

from events.envelope import EventBody
from events.values import (
    Capabilities,
    Count,
    Identifier,
    MemoryProfile,
    Text,
    UtcDatetime,
    duplicates,
)

Health = Literal["healthy", "degraded", "unhealthy", "unknown"]


class AgentEvent(EventBody):
    key_field = "agent_id"

    agent_id: Identifier


class AgentRegistered(AgentEvent):
    """An agent joined the fleet, or re-registered with a new declaration that replaces the old one."""

    event_type = "AgentRegistered"

    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    capabilities: Capabilities
    capacity: Annotated[int, Field(ge=1, description="Most tasks the agent runs at once.")]
    capacity_per_capability: dict[str, Annotated[int, Field(ge=1)]] = {}
    cost_per_task: Annotated[float, Field(ge=0.0)] = 0.0
    labels: dict[str, str] = {}
    memory_profile: MemoryProfile | None = None
    sdk_version: str | None = None

    @model_validator(mode="after")
    def _limits_name_declared_capabilities(self) -> "AgentRegistered":
        declared = {c.name for c in self.capabilities}
        if unknown := sorted(set(self.capacity_per_capability) - declared):
            raise ValueError(f"capacity_per_capability names undeclared capabilities: {', '.join(unknown)}")
        return self


class AgentDeregistered(AgentEvent):
    """An agent left; with drain, in-flight tasks may finish, otherwise they are reassigned."""

    event_type = "AgentDeregistered"

    reason: Text = ""
    drain: bool = True


class AgentCapabilitiesChanged(AgentEvent):
    """Capabilities were added, removed or re-rated, by the agent itself or by an operator."""

    event_type = "AgentCapabilitiesChanged"

    added: Capabilities = ()
    removed: tuple[Identifier, ...] = ()
    changed: Capabilities = Field(default=(), description="Capabilities with their new proficiency.")
    changed_by: Annotated[str, Field(min_length=1, max_length=256)]
    reason: Text = ""

    @model_validator(mode="after")
    def _each_name_changes_once(self) -> "AgentCapabilitiesChanged":
        names = [c.name for c in self.added] + list(self.removed) + [c.name for c in self.changed]
        if not names:
            raise ValueError("no capability was added, removed or changed")
        if dupes := duplicates(names):
            raise ValueError(f"capabilities named more than once: {', '.join(dupes)}")
        return self

    def proficiencies_after(self, before: Mapping[str, float]) -> dict[str, float]:
        """Declared proficiency per capability once this change applies to `before`."""
        after = {name: p for name, p in before.items() if name not in self.removed}
        after.update({c.name: c.proficiency for c in (*self.added, *self.changed)})
        return after

    def versions_after(self, before: Mapping[str, str]) -> dict[str, str]:
        """Declared version per capability once this change applies; a capability re-declared without one has none."""
        after = {name: v for name, v in before.items() if name not in self.removed}
        for capability in (*self.added, *self.changed):
            after.pop(capability.name, None)
            if capability.version:
                after[capability.name] = capability.version
        return after


class AgentMemoryProfileUpdated(AgentEvent):
    event_type = "AgentMemoryProfileUpdated"

    memory_profile: MemoryProfile


class AgentHeartbeat(AgentEvent):
    event_type = "AgentHeartbeat"

    in_flight: Count
    queue_depth: Count = 0
    cpu_percent: Annotated[float, Field(ge=0.0)] | None = None
    memory_mb: Annotated[float, Field(ge=0.0)] | None = None
    agent_version: str | None = None


class AgentHealthChanged(AgentEvent):
    """The health monitor's verdict on an agent changed."""

    event_type = "AgentHealthChanged"

    previous: Health
    current: Health
    reason: Text = ""
    missed_heartbeats: Count = 0
    # Filled by monitors before the balancer alone kept track of tasks in flight; it reassigns
    # the unhealthy agent's tasks itself, so the monitor now leaves this empty.
    in_flight_task_ids: tuple[Identifier, ...] = ()

    @model_validator(mode="after")
    def _is_a_change(self) -> "AgentHealthChanged":
        if self.previous == self.current:
            raise ValueError(f"health did not change: still {self.current}")
        return self


class AgentLoadSummarized(AgentEvent):
    """An agent's load over one window, derived from its heartbeats.

    Heartbeats may expire from Kafka; this summary is kept, so load history survives a rebuild.
    """

    event_type = "AgentLoadSummarized"

    window_start: UtcDatetime
    window_end: UtcDatetime
    heartbeats: Annotated[int, Field(ge=1)]
    avg_in_flight: Annotated[float, Field(ge=0.0)]
    max_in_flight: Count
    avg_queue_depth: Annotated[float, Field(ge=0.0)] = 0.0
    avg_cpu_percent: Annotated[float, Field(ge=0.0)] | None = None
    max_memory_mb: Annotated[float, Field(ge=0.0)] | None = None

    @model_validator(mode="after")
    def _window_is_ordered(self) -> "AgentLoadSummarized":
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


AGENT_EVENTS: tuple[type[AgentEvent], ...] = (
    AgentRegistered,
    AgentDeregistered,
    AgentCapabilitiesChanged,
    AgentMemoryProfileUpdated,
    AgentHeartbeat,
    AgentHealthChanged,
    AgentLoadSummarized,
)
