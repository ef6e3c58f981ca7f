from datetime import datetime, timezone
from typing import Annotated, ClassVar, Generic, TypeVar
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.values import Identifier, UtcDatetime

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class EventBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    key_field: ClassVar[str]

    @property
    def key(self) -> str:
        return getattr(self, self.key_field)


BodyT = TypeVar("BodyT")
B = TypeVar("B", bound=EventBody)


class Envelope(BaseModel, Generic[BodyT]):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Annotated[str, Field(pattern=UUID_PATTERN)]
    event_type: Identifier
    # Strict, as the codec's general path is: `true` or `1.0` is no version, whichever path reads it.
    version: Annotated[int, Field(ge=1, strict=True)]
    occurred_at: UtcDatetime
    producer: Annotated[str, Field(min_length=1, max_length=256)]
    correlation_id: Identifier | None = None
    causation_id: Identifier | None = None
    key: Identifier
    body: BodyT

    @model_validator(mode="after")
    def _agrees_with_body(self) -> "Envelope[BodyT]":
        body = self.body
        if isinstance(body, EventBody):
            if (self.event_type, self.version) != (body.event_type, body.version):
                raise ValueError(
                    f"envelope says {self.event_type} v{self.version} but the body is {body.event_type} v{body.version}"
                )
            if self.key != body.key:
                raise ValueError(f"key {self.key!r} differs from body.{body.key_field} {body.key!r}")
        return self


def make_event(
    body: B,
    *,
    producer: str,
    cause: Envelope | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> Envelope[B]:
    if cause is not None:
        causation_id = causation_id or cause.event_id
        correlation_id = correlation_id or cause.correlation_id or cause.event_id
    return Envelope[type(body)](
        event_id=event_id or str(uuid4()),
        event_type=body.event_type,
        version=body.version,
        occurred_at=occurred_at or datetime.now(timezone.utc),
        producer=producer,
        correlation_id=correlation_id,
        causation_id=causation_id,
        key=body.key,
        body=body,
    )
