"""Steps that lift an old body dict one version up, applied before validation.

A type name never changes and old events stay on the log forever, so a step is never removed.
"""

from collections.abc import Callable

from events.errors import InvalidEvent, UnsupportedVersion

Upcaster = Callable[[dict], dict]


def task_submitted_v1_to_v2(body: dict) -> dict:
    upgraded = dict(body)
    capability = upgraded.pop("required_capability")
    upgraded["requirements"] = [{"name": capability, "min_proficiency": 0.0}]
    return upgraded


def task_timed_out_v1_to_v2(body: dict) -> dict:
    return dict(body)  # a version 1 timeout gave no reason: its stage says what ran out


def task_assigned_v1_to_v2(body: dict) -> dict:
    return dict(body)  # a version 1 assignment did not say how likely it was: its propensity stays unknown


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("TaskSubmitted", 1): task_submitted_v1_to_v2,
    ("TaskTimedOut", 1): task_timed_out_v1_to_v2,
    ("TaskAssigned", 1): task_assigned_v1_to_v2,
}


def upcast(event_type: str, version: int, body: object, target: int) -> dict:
    if not isinstance(body, dict):
        raise InvalidEvent(
            f"{event_type} v{version}: body must be a JSON object", event_type=event_type, version=version
        )
    for step_from in range(version, target):
        step = UPCASTERS.get((event_type, step_from))
        if step is None:
            raise UnsupportedVersion(
                f"{event_type} v{version} cannot be read: no upcaster from v{step_from} to v{step_from + 1}",
                event_type=event_type,
                version=version,
            )
        try:
            body = step(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidEvent(
                f"{event_type} v{version} could not be upcast from v{step_from}: {type(exc).__name__} {exc}",
                event_type=event_type,
                version=version,
            ) from None
    return body
