from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

# Names as users write them ("owner/repo", "gpt-4.1@eu", "MATH prealgebra"): Kafka keys are bytes and SQL
# values travel as parameters, so neither needs a narrower alphabet. Refused: control characters (NUL,
# which PostgreSQL text cannot hold, and line breaks that would forge log lines), whitespace at either
# end (two names that print alike) and more than ID_MAX_LENGTH characters.
ID_MAX_LENGTH = 200
_PRINTABLE = r"[^\x00-\x1f\x7f-\x9f]"
_EDGE = r"[^\s\x00-\x1f\x7f-\x9f]"
ID_PATTERN = rf"^(?:{_EDGE}|{_EDGE}{_PRINTABLE}{{0,{ID_MAX_LENGTH - 2}}}{_EDGE})$"

Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Attempt = Annotated[int, Field(ge=1)]
Text = Annotated[str, Field(max_length=4000)]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def duplicates(names: Iterable[str]) -> list[str]:
    return sorted(name for name, seen in Counter(names).items() if seen > 1)


def unique_names(items: tuple) -> tuple:
    if dupes := duplicates(item.name for item in items):
        raise ValueError(f"duplicate names: {', '.join(dupes)}")
    return items


class Value(BaseModel):
    # NaN and infinity would serialize as null and silently change meaning on the wire.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Capability(Value):
    """A skill an agent declares, with its self-assessed proficiency."""

    name: Identifier
    proficiency: Probability
    version: str | None = None
    tags: tuple[Tag, ...] = ()


class CapabilityRequirement(Value):
    name: Identifier
    min_proficiency: Probability = 0.0


class MemoryProfile(Value):
    """Where an agent keeps its memory, for how long, and whether it shares what it learned."""

    store_kind: Identifier
    namespace: str | None = None
    retention_days: Annotated[int, Field(ge=1)] | None = None
    context_tokens: Annotated[int, Field(ge=1)] | None = None
    share_experience: bool = False


class Candidate(Value):
    """One agent the router considered, with what its score was based on."""

    agent_id: Identifier
    score: float
    features: dict[str, float] = {}
    predicted_success: Probability | None = None
    confidence: Probability | None = None
    propensity: Probability = Field(description="Probability that the policy picks this candidate.")


Capabilities = Annotated[tuple[Capability, ...], AfterValidator(unique_names)]
Requirements = Annotated[tuple[CapabilityRequirement, ...], AfterValidator(unique_names)]
NonEmptyRequirements = Annotated[tuple[CapabilityRequirement, ...], Field(min_length=1), AfterValidator(unique_names)]
