"""What a handler receives: one assignment, and a way to pass work on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from events.tasks import TaskAssigned, TaskHandedOff
from events.values import CapabilityRequirement
from services.privacy.client import open_field
from services.privacy.keystore import KeyStore
from services.privacy.sealing import is_sealed
from services.sdk.registration import readable


@dataclass(frozen=True, eq=False)
class Task:
    task_id: str
    attempt: int
    capability: str
    payload: Mapping[str, Any]
    deadline: datetime | None
    agent_id: str
    assignment_event_id: str
    _hand_off: Callable[[TaskHandedOff], Awaitable[None]] = field(repr=False)

    @classmethod
    def of(
        cls, assignment: TaskAssigned, event_id: str, hand_off: Callable[[TaskHandedOff], Awaitable[None]]
    ) -> "Task":
        return cls(
            task_id=assignment.task_id,
            attempt=assignment.attempt,
            capability=assignment.capability,
            payload=assignment.payload,
            deadline=assignment.deadline,
            agent_id=assignment.agent_id,
            assignment_event_id=event_id,
            _hand_off=hand_off,
        )

    def seconds_left(self, now: datetime | None = None) -> float | None:
        if self.deadline is None:
            return None
        return (self.deadline - (now or datetime.now(timezone.utc))).total_seconds()

    @property
    def expired(self) -> bool:
        left = self.seconds_left()
        return left is not None and left <= 0

    @property
    def sealed_fields(self) -> tuple[str, ...]:
        """Payload fields sealed per data subject; `reveal` opens them."""
        return tuple(name for name, value in self.payload.items() if is_sealed(value))

    async def reveal(self, field: str, keystore: KeyStore) -> Any:
        """The plaintext of a payload field: a sealed field opened with its subject's key, a plain one as it is.

        Raises KeyUnavailable when the subject was erased, SealingError when the field was
        tampered with or does not belong to this task.
        """
        if field not in self.payload:
            raise KeyError(f"task {self.task_id} has no payload field {field!r}")
        if not is_sealed(self.payload[field]):
            return self.payload[field]
        return await open_field(self.payload, field, task_id=self.task_id, keystore=keystore)

    async def hand_off(
        self,
        to_agent_id: str | None = None,
        requirements: Iterable[CapabilityRequirement | Mapping | str] = (),
        reason: str = "",
        subtask_id: str | None = None,
    ) -> None:
        """Pass this task (subtask_id None) or a subtask on; to_agent_id None lets the router choose.

        Handing off the whole task ends this attempt: nothing else is reported for it, and
        the handler should return. A subtask hand-off leaves the task with this agent.
        """
        wanted = tuple(CapabilityRequirement(name=r) if isinstance(r, str) else r for r in requirements)
        try:
            body = TaskHandedOff(
                task_id=self.task_id,
                from_agent_id=self.agent_id,
                attempt=self.attempt,
                to_agent_id=to_agent_id,
                subtask_id=subtask_id,
                reason=reason,
                requirements=wanted,
            )
        except ValidationError as error:
            raise ValueError(f"invalid hand-off of {self.task_id}: {readable(error)}") from None
        await self._hand_off(body)
