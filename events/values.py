from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

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
