from events.agents import AGENT_EVENTS
from events.envelope import EventBody
from events.errors import UnknownEventType
from events.learning import LEARNING_EVENTS
from events.privacy import PRIVACY_EVENTS
from events.security import SECURITY_EVENTS
from events.tasks import TASK_EVENTS

EVENT_TYPES: dict[str, type[EventBody]] = {
    cls.event_type: cls for cls in (*AGENT_EVENTS, *TASK_EVENTS, *LEARNING_EVENTS, *PRIVACY_EVENTS, *SECURITY_EVENTS)
}


def body_class(event_type: str) -> type[EventBody]:
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r}", event_type=event_type) from None
