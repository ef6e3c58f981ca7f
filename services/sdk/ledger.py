"""Which assignment offsets are finished, so a restart neither loses nor repeats work.

Tasks finish out of order, so "the next offset to read" cannot simply follow the last record
handled. The committed offset is the lowest offset still open (received, outcome not yet
published); the commit metadata names the offsets above it that are still open and where
reading had got to. Everything between the committed offset and that end which is not named
open is finished, including offsets that never arrive as records (transaction markers).
On restart the agent seeks to the committed offset and skips every finished record.

The commit and the outcomes it covers go to Kafka in one transaction (see outbox.py), so the
position can never run ahead of, or lag behind, what was actually reported.

Metadata format, offsets relative to the committed one: "1:<end>:<open>,<open>,…".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FORMAT = "1"
# Kafka's default offset.metadata.max.bytes; the agent's window of open offsets keeps us far below.
MAX_METADATA = 4096


class LedgerMetadataError(ValueError):
    pass


@dataclass(frozen=True)
class Position:
    offset: int
    metadata: str


def encode(offset: int, end: int, still_open: Iterable[int]) -> str:
    above = sorted(o - offset for o in still_open if o > offset)
    if end <= offset:
        return ""
    text = f"{FORMAT}:{end - offset}:{','.join(map(str, above))}"
    if len(text.encode()) > MAX_METADATA:
        raise LedgerMetadataError(f"{len(above)} open offsets do not fit in a commit's metadata")
    return text


def decode(offset: int, metadata: str) -> tuple[int, set[int]]:
    """(end, still-open offsets) of a committed position; an empty metadata knows nothing more."""
    if not metadata:
        return offset, set()
    try:
        version, end, still_open = metadata.split(":")
        if version != FORMAT:
            raise ValueError(f"format {version!r}")
        return offset + int(end), {offset} | {offset + int(o) for o in still_open.split(",") if o}
    except ValueError as error:
        raise LedgerMetadataError(
            f"committed offset {offset} carries metadata {metadata!r} this SDK cannot read ({error}); "
            "was the group's offset set by another tool?"
        ) from None


class Ledger:
    def __init__(self, start: int, *, resume_end: int | None = None, redo: Iterable[int] = ()) -> None:
        self._next = start
        self._resume_end = max(resume_end or start, start)
        # Offsets below resume_end that were open when the position was committed: they run again.
        self._redo = {o for o in redo if start <= o < self._resume_end}
        self._open: set[int] = set()

    @classmethod
    def resume(cls, offset: int, metadata: str) -> "Ledger":
        end, still_open = decode(offset, metadata)
        return cls(offset, resume_end=end, redo=still_open)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def receive(self, offset: int) -> bool:
        """Note a record as read; False when it was finished before (a restart skips it)."""
        self._next = max(self._next, offset + 1)
        if offset < self._resume_end and offset not in self._redo:
            return False
        self._redo.discard(offset)
        self._open.add(offset)
        return True

    def finish(self, offset: int) -> None:
        self._open.discard(offset)

    def position(self) -> Position:
        end = max(self._next, self._resume_end)
        pending = self._open | self._redo
        offset = min(pending) if pending else end
        return Position(offset, encode(offset, end, pending))
