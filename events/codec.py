"""The one place events become bytes and bytes become events."""

from collections.abc import Mapping

import orjson
from pydantic import ValidationError

from events.catalog import body_class
from events.envelope import Envelope
from events.errors import EventDecodeError, InvalidEvent, MalformedEvent, UnknownEventType, UnsupportedVersion
from events.upcasters import upcast

__all__ = [
    "encode",
    "decode",
    "EVENT_TYPE_HEADER",
    "type_header",
    "header_type",
    "wanted",
    "EventDecodeError",
    "MalformedEvent",
    "UnknownEventType",
    "UnsupportedVersion",
    "InvalidEvent",
]

_ERRORS_SHOWN = 5
_ENVELOPES: dict[type, type] = {}  # body class -> Envelope[body class]: pydantic's own lookup costs ~2 us an event


def _envelope_of(cls: type) -> type:
    envelope = _ENVELOPES.get(cls)
    if envelope is None:
        envelope = _ENVELOPES[cls] = Envelope[cls]
    return envelope


def encode(envelope: Envelope) -> bytes:
    # Sorted keys make equal events equal bytes, which the audit hash chain relies on.
    return orjson.dumps(envelope.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


# Every producer puts the event type in this record header, so that a consumer can pass over
# what it does not handle without parsing it. A record without it is parsed as before.
EVENT_TYPE_HEADER = "event_type"


def type_header(envelope: Envelope) -> tuple[str, bytes]:
    return EVENT_TYPE_HEADER, envelope.event_type.encode()


def header_type(headers) -> str | None:
    """The event type a record's producer named in its headers (Kafka's pairs or Faust's mapping), if any."""
    for name, value in headers.items() if isinstance(headers, Mapping) else headers or ():
        if name == EVENT_TYPE_HEADER:
            return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
    return None


def wanted(headers, event_types: frozenset[str]) -> bool:
    """False only when the headers name an event type outside `event_types`: such a record can be skipped unread."""
    named = header_type(headers)
    return named is None or named in event_types


def decode(raw: bytes | str | dict, event_type: str | None = None) -> Envelope:
    """The envelope in `raw`. `event_type`, from the record's header, lets valid current events be
    validated straight from bytes; the envelope must then be of that type."""
    if event_type is not None and isinstance(raw, (bytes, str)):
        envelope = _decode_as(raw, event_type)
        if envelope is not None:
            return envelope
    envelope = _decode(raw)
    if event_type is not None and envelope.event_type != event_type:
        raise InvalidEvent(
            f"the record's {EVENT_TYPE_HEADER} header says {event_type} but it holds {envelope.event_type}",
            event_type=envelope.event_type,
            version=envelope.version,
        )
    return envelope


def _decode_as(raw: bytes | str, event_type: str) -> Envelope | None:
    # Parsing straight from bytes skips building the dict; anything unusual (an older version to
    # upcast, an invalid event, an unknown type) takes the general path, which explains it.
    try:
        return _envelope_of(body_class(event_type)).model_validate_json(raw)
    except (ValidationError, EventDecodeError, ValueError):
        return None


def _decode(raw: bytes | str | dict) -> Envelope:
    data = _as_object(raw)
    event_type, version = data.get("event_type"), data.get("version")
    if not isinstance(event_type, str):
        raise MalformedEvent("event has no string 'event_type'")
    if type(version) is not int:
        raise MalformedEvent(f"{event_type} event has no integer 'version'", event_type=event_type)
    cls = body_class(event_type)
    if version > cls.version:
        raise UnsupportedVersion(
            f"{event_type} v{version} is newer than v{cls.version}, the latest this code understands",
            event_type=event_type,
            version=version,
        )
    if version < cls.version:
        data = {**data, "version": cls.version, "body": upcast(event_type, version, data.get("body"), cls.version)}
    try:
        return _envelope_of(cls).model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(
            f"{event_type} v{version} is invalid: {_describe(exc)}", event_type=event_type, version=version
        ) from None


def _as_object(raw: bytes | str | dict) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        data = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise MalformedEvent(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(data).__name__}")
    return data


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [_describe_one(error) for error in errors[:_ERRORS_SHOWN]]
    if len(errors) > _ERRORS_SHOWN:
        parts.append(f"and {len(errors) - _ERRORS_SHOWN} more")
    return "; ".join(parts)


def _describe_one(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "envelope"
    shown = error.get("input")
    got = "" if isinstance(shown, (dict, list, tuple)) or error["type"] == "missing" else f" (got {shown!r:.60})"
    return f"{where}: {error['msg']}{got}"
