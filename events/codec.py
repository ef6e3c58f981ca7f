"""The one place events become bytes and bytes become events."""

import orjson
from pydantic import ValidationError

from events.catalog import body_class
from events.envelope import Envelope
from events.errors import EventDecodeError, InvalidEvent, MalformedEvent, UnknownEventType, UnsupportedVersion
from events.upcasters import upcast

__all__ = [
    "encode",
    "decode",
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


def decode(raw: bytes | str | dict) -> Envelope:
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
