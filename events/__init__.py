from events.catalog import EVENT_TYPES, body_class
from events.codec import decode, encode
from events.envelope import Envelope, EventBody, make_event
from events.errors import EventDecodeError, InvalidEvent, MalformedEvent, UnknownEventType, UnsupportedVersion

__all__ = [
    "EVENT_TYPES",
    "Envelope",
    "EventBody",
    "EventDecodeError",
    "InvalidEvent",
    "MalformedEvent",
    "UnknownEventType",
    "UnsupportedVersion",
    "body_class",
    "decode",
    "encode",
    "make_event",
]
