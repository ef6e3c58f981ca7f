from dataclasses import asdict, dataclass

from events.errors import UnknownEventType

FOREVER = -1
SEVEN_DAYS_MS = 7 * 24 * 60 * 60 * 1000
# Task-keyed topics are joined, so they must share a partition count.
PARTITIONS = 6


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    name: str
    events: tuple[str, ...]
    key: str
    partitions: int = PARTITIONS
    cleanup_policy: str = "delete"
    retention_ms: int = FOREVER
    dead_letter: bool = False
    description: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="agents",
        events=(
            "AgentRegistered",
            "AgentDeregistered",
            "AgentCapabilitiesChanged",
            "AgentMemoryProfileUpdated",
            "AgentHealthChanged",
            "AgentLoadSummarized",
        ),
        key="agent_id",
        description="Agent lifecycle, declared capabilities, memory profiles and health verdicts.",
    ),
    TopicSpec(
        name="heartbeats",
        events=("AgentHeartbeat",),
        key="agent_id",
        retention_ms=SEVEN_DAYS_MS,
        description="High-volume liveness and load telemetry; may expire because the health "
        "changes derived from it are kept forever.",
    ),
    TopicSpec(
        name="tasks",
        events=("TaskSubmitted", "TaskRouted", "TaskQueued", "TaskTimedOut", "TaskReassigned"),
        key="task_id",
        description="Task submissions and the orchestrator's decisions about them.",
    ),
    TopicSpec(
        name="task-outcomes",
        events=("TaskStarted", "TaskCompleted", "TaskFailed", "TaskRejected", "TaskHandedOff"),
        key="task_id",
        description="What agents report about their tasks; separate from decisions so agents "
        "may write outcomes without being able to write decisions.",
    ),
    TopicSpec(
        name="assignments",
        events=("TaskAssigned",),
        key="agent_id",
        description="Work handed to agents, keyed by agent so each agent reads only its own partition.",
    ),
    TopicSpec(
        name="models",
        events=("ModelPublished",),
        key="model_id",
        description="Every published version of every learned model, as plain JSON parameters.",
    ),
    TopicSpec(
        name="skills",
        events=("SkillEstimated", "RelationshipScored", "SkillShiftDetected"),
        key="agent_id",
        description="Learned proficiency per agent and capability, detected changes in it, and how pairs of "
        "agents work together.",
    ),
    TopicSpec(
        name="security",
        events=("AgentKeyEnrolled", "AgentKeyRevoked", "SecurityViolationDetected"),
        key="agent_id",
        description="Agents' signing keys as operators enrolled and revoked them, and records rejected as "
        "not coming from the agent they speak for; kept forever, so every verdict can be re-checked.",
    ),
    TopicSpec(
        name="privacy",
        events=("SubjectErased",),
        key="key_id",
        description="Erasures of data subjects, naming only the destroyed keys: kept forever as the proof "
        "that sealed fields became unreadable.",
    ),
    TopicSpec(
        name="dead-letter",
        events=(),
        key="original_key",
        dead_letter=True,
        description="Messages that failed to decode or to be handled, with headers naming their "
        "origin, error and attempt count, waiting to be re-injected after a fix.",
    ),
)

EVENT_TOPICS: tuple[TopicSpec, ...] = tuple(t for t in TOPICS if not t.dead_letter)
DEAD_LETTER: TopicSpec = next(t for t in TOPICS if t.dead_letter)
_TOPIC_OF_EVENT = {event: topic for topic in EVENT_TOPICS for event in topic.events}


def topic_name(spec_or_logical_name: TopicSpec | str, prefix: str) -> str:
    name = spec_or_logical_name.name if isinstance(spec_or_logical_name, TopicSpec) else spec_or_logical_name
    return f"{prefix}.{name}"


def topic_for_event(event_type: str) -> TopicSpec:
    try:
        return _TOPIC_OF_EVENT[event_type]
    except KeyError:
        raise UnknownEventType(f"no topic carries event type {event_type!r}", event_type=event_type) from None


def spec_as_json(spec: TopicSpec) -> dict:
    return {**asdict(spec), "events": list(spec.events)}


def catalog_as_json_objects(prefix: str) -> list[dict]:
    return [{**spec_as_json(spec), "name": topic_name(spec, prefix), "logical_name": spec.name} for spec in TOPICS]
