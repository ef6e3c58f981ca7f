"""The hash chain of the audit log: pure functions, no database, no Kafka.

Row n's hash is SHA-256(hash of row n-1 || canonical bytes of row n). The canonical bytes
cover the row's sequence number, its Kafka position and timestamp, and the key, value and
headers exactly as they were on Kafka: an encrypted field is covered as ciphertext, so the
chain still verifies after its key was destroyed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

GENESIS = bytes(32)
_NULL = -1


@dataclass(frozen=True)
class Entry:
    """One Kafka record as the audit log keeps it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Row:
    """A stored row: the entry, its place in the chain, and the hashes stored with it."""

    seq: int
    entry: Entry
    prev_hash: bytes
    hash: bytes


def _chunk(data: bytes | None) -> bytes:
    if data is None:
        return struct.pack(">q", _NULL)
    return struct.pack(">q", len(data)) + data


def canonical_bytes(seq: int, entry: Entry) -> bytes:
    """Length-prefixed, so no two different rows share the same bytes."""
    parts = [
        struct.pack(">q", seq),
        _chunk(entry.topic.encode()),
        struct.pack(">iqq", entry.partition, entry.offset, entry.timestamp_ms),
        _chunk(entry.key),
        _chunk(entry.value),
        encode_headers(entry.headers),
    ]
    return b"".join(parts)


def encode_headers(headers: tuple[tuple[str, bytes], ...]) -> bytes:
    return struct.pack(">i", len(headers)) + b"".join(_chunk(n.encode()) + _chunk(v) for n, v in headers)


def decode_headers(data: bytes) -> tuple[tuple[str, bytes], ...]:
    (count,), at = struct.unpack_from(">i", data), 4
    headers = []
    for _ in range(count):
        name, at = _unchunk(data, at)
        value, at = _unchunk(data, at)
        headers.append(((name or b"").decode(), value))
    return tuple(headers)


def _unchunk(data: bytes, at: int) -> tuple[bytes | None, int]:
    (length,) = struct.unpack_from(">q", data, at)
    at += 8
    if length == _NULL:
        return None, at
    return data[at : at + length], at + length


def link(prev_hash: bytes, seq: int, entry: Entry) -> bytes:
    return hashlib.sha256(prev_hash + canonical_bytes(seq, entry)).digest()


@dataclass(frozen=True)
class Head:
    """The end of a chain: the next row gets seq + 1 and links to `hash`."""

    seq: int = 0
    hash: bytes = GENESIS


def extend(head: Head, entries: Iterable[Entry]) -> tuple[list[Row], Head]:
    """Chain `entries` after `head`: the rows to store and the new head."""
    rows = []
    seq, prev = head.seq, head.hash
    for entry in entries:
        seq += 1
        digest = link(prev, seq, entry)
        rows.append(Row(seq, entry, prev, digest))
        prev = digest
    return rows, Head(seq, prev)


# --- verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """The first place the log stops being what was written."""

    seq: int
    kind: str  # altered | missing | out_of_order | broken_link | truncated | checkpoint_forged | checkpoint_mismatch
    detail: str
    position: str | None = None  # topic[partition]@offset of the row, where one is known

    def describe(self) -> str:
        where = f"seq {self.seq}" + (f" ({self.position})" if self.position else "")
        return f"{self.kind} at {where}: {self.detail}"


@dataclass
class ChainCheck:
    """Walks stored rows in seq order; stops at the first problem."""

    rows: int = 0
    head: Head = field(default_factory=Head)
    problem: Problem | None = None
    hashes: dict[int, bytes] = field(default_factory=dict)
    watch: frozenset[int] = frozenset()

    def feed(self, row: Row) -> bool:
        """Check one more row; False once a problem was found."""
        if self.problem:
            return False
        expected = self.head.seq + 1
        if row.seq != expected:
            # The row that should be here is gone, so its position is not known; the next row's is.
            kind = "missing" if row.seq > expected else "out_of_order"
            self.problem = Problem(
                expected, kind, f"expected seq {expected}, found seq {row.seq} ({row.entry.position}) next"
            )
            return False
        if row.prev_hash != self.head.hash:
            self.problem = Problem(
                row.seq, "broken_link", "its previous hash is not the hash of the row before", row.entry.position
            )
            return False
        if link(self.head.hash, row.seq, row.entry) != row.hash:
            self.problem = Problem(row.seq, "altered", "its content does not match its hash", row.entry.position)
            return False
        self.rows += 1
        self.head = Head(row.seq, row.hash)
        if row.seq in self.watch:
            self.hashes[row.seq] = row.hash
        return True

    def hash_at(self, seq: int) -> bytes | None:
        return self.hashes.get(seq)


def check_chain(rows: Iterable[Row], watch: Iterable[int] = ()) -> ChainCheck:
    """Check `rows` (in seq order), remembering the hashes at the seqs in `watch` (checkpoints)."""
    check = ChainCheck(watch=frozenset(watch))
    for row in rows:
        if not check.feed(row):
            break
    return check
