from dataclasses import asdict, dataclass

from events.errors import MisplacedEvent, UnknownEventType

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
    # CreateTime: a record keeps the time its producer gave it; LogAppendTime: the broker's, when it wrote it.
    timestamp_type: str = "CreateTime"
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
        ),
        key="agent_id",
        description="Agent lifecycle, declared capabilities and memory profiles.",
    ),
    TopicSpec(
        name="health",
        events=("AgentHealthChanged", "AgentLoadSummarized"),
        key="agent_id",
        description="The health monitor's verdicts and load summaries; apart from the agents topic, which "
        "every agent may write, so that only the health monitor can declare an agent unhealthy.",
    ),
    TopicSpec(
        name="heartbeats",
        events=("AgentHeartbeat",),
        key="agent_id",
        retention_ms=SEVEN_DAYS_MS,
        # The health monitor judges liveness by when the broker wrote a heartbeat: neither by an
        # agent's clock nor by when the monitor got to read it.
        timestamp_type="LogAppendTime",
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


def belongs(event_type: str, topic: str) -> bool:
    """Whether the catalog puts `event_type` on `topic`, a full topic name (`<prefix>.<name>`).

    Readers take an event only from its own topic: who may write a topic is what the ACLs
    decide, so an event found on another (a verdict on the agents topic, which every agent
    may write) comes from someone not allowed to speak it.
    """
    spec = _TOPIC_OF_EVENT.get(event_type)
    return spec is not None and _split(topic)[1] == spec.name


def misplaced(event_type: str, topic: str) -> MisplacedEvent | None:
    """Why `event_type` is refused on `topic`, for readers that park what they refuse; None where it belongs."""
    if belongs(event_type, topic):
        return None
    home = _TOPIC_OF_EVENT.get(event_type)
    where = f"only {topic_name(home, _split(topic)[0])} carries it" if home else "no topic carries it"
    return MisplacedEvent(f"{event_type} is not accepted on {topic}: {where}", event_type=event_type)


def _split(topic: str) -> tuple[str, str]:
    # Logical names hold no dot, so whatever the prefix, what follows the last dot is the name:
    # a reader judges a record by its topic alone, a replay and a bulk load included.
    prefix, _, name = topic.rpartition(".")
    return prefix, name


def spec_as_json(spec: TopicSpec) -> dict:
    return {**asdict(spec), "events": list(spec.events)}


def catalog_as_json_objects(prefix: str) -> list[dict]:
    return [{**spec_as_json(spec), "name": topic_name(spec, prefix), "logical_name": spec.name} for spec in TOPICS]
