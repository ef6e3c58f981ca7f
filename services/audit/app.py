"""The audit projector: every record of every catalog topic into the hash-chained audit log.

It rides on the projector's consumer loop and seek-to-stored-position plumbing; what
differs is the batch: records are chained, not decoded, so nothing is unusable to it (an
invalid message is exactly what an audit must keep) and it never dead-letters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import checkpoints
from services.audit.chain import Head, extend
from services.audit.checkpoints import Checkpoint
from services.audit.logic import checkpoint_due, entry_of, fresh
from services.projector.app import Projector

log = logging.getLogger("orchestrator.audit")


class Checkpointer:
    """Signs and exports a checkpoint every `every_rows` rows or `every_s` seconds."""

    def __init__(
        self,
        *,
        chain: str,
        directory: Path,
        key: Ed25519PrivateKey,
        every_rows: int,
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain, self.directory, self.key = chain, directory, key
        self.every_rows, self.every_s, self.clock = every_rows, every_s, clock
        self.signed_seq = 0
        self.signed_at = clock()

    def start_from(self, newest: Checkpoint | None) -> None:
        self.signed_seq = newest.last_seq if newest else 0

    def maybe(self, head: Head, position: str, *, force: bool = False) -> Path | None:
        rows_since = head.seq - self.signed_seq
        if not (force and rows_since > 0) and not checkpoint_due(
            rows_since, self.clock() - self.signed_at, every_rows=self.every_rows, every_s=self.every_s
        ):
            return None
        checkpoint = checkpoints.sign(
            Checkpoint(
                chain=self.chain,
                last_seq=head.seq,
                last_hash=head.hash.hex(),
                count=head.seq,
                time=datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                last_position=position,
            ),
            self.key,
        )
        path = checkpoints.write(self.directory, checkpoint)
        self.signed_seq, self.signed_at = head.seq, self.clock()
        log.info("signed checkpoint at seq %d: %s", head.seq, path)
        return path


class Auditor(Projector):
    """`view` is the AuditStore: the projector's rebalance listener asks it for stored positions."""

    def __init__(self, *, head: Head, position: str, checkpointer: Checkpointer, **projector) -> None:
        super().__init__(dead_letters=None, **projector)
        self.store = self.view
        self.head, self.position, self.checkpointer = head, position, checkpointer
        self.metrics.audit_chain_seq.labels(self.metrics.service).set(head.seq)

    async def handle(self, records) -> int:
        started = time.perf_counter()
        for record in records:
            self.metrics.events_in.labels(self.metrics.service, record.topic).inc()
        kept = fresh(records, self.store.positions)
        rows, head = extend(self.head, map(entry_of, kept))
        await self.store.append(rows)
        self.head = head  # only once committed: a failed append leaves the chain where it was
        if rows:
            self.position = rows[-1].entry.position
        for record in kept:
            self.metrics.events_applied.labels(self.metrics.service, record.topic).inc()
        self.metrics.batch_seconds.labels(self.metrics.service).observe(time.perf_counter() - started)
        self.metrics.audit_chain_seq.labels(self.metrics.service).set(self.head.seq)
        self._checkpoint()
        return len(rows)

    def idle(self) -> None:
        """Between fetches: a time-based checkpoint even when nothing new arrives."""
        self._checkpoint()

    def final_checkpoint(self) -> None:
        self._checkpoint(force=True)

    def _checkpoint(self, force: bool = False) -> None:
        if self.checkpointer.maybe(self.head, self.position, force=force):
            self.metrics.audit_checkpoint_time.labels(self.metrics.service).set(time.time())
