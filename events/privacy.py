from typing import Annotated, Literal

from pydantic import Field

from events.envelope import EventBody
from events.values import Identifier, UtcDatetime

# Why a subject's data was erased; a code, never free text, so no personal data slips in.
ErasureReason = Literal["subject-request", "consent-withdrawn", "retention-expired", "legal-obligation", "other"]


class SubjectErased(EventBody):
    """A data subject's key was destroyed: every field sealed with it is now unreadable for good.

    Names only the key (a random pseudonym), never the subject.
    """

    event_type = "SubjectErased"
    key_field = "key_id"

    key_id: Identifier
    erasure_id: Annotated[Identifier, Field(description="Shared by every key destroyed by one erasure request.")]
    erased_at: UtcDatetime
    erased_by: Annotated[str, Field(min_length=1, max_length=256, description="The operator who erased it.")]
    reason: ErasureReason


PRIVACY_EVENTS: tuple[type[EventBody], ...] = (SubjectErased,)
