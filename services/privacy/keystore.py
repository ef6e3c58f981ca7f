"""The key store shell: subject keys in PostgreSQL, read and destroyed by clients, agents and erasure.

No processor uses it: processors see only sealed fields, so a replay never needs a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import psycopg
from psycopg import sql

from services.privacy.sealing import KeyUnavailable, SubjectKey, new_key
from services.settings import Settings

KEYSTORE_LOCK = 0x6B657973  # advisory lock: one creator of the key store tables at a time
MAX_SUBJECT_CHARS = 256
SCRUB_POLL_S = 0.2
_KEPT_DEAD_ROWS = re.compile(r"(\d+) dead row versions cannot be removed yet")


class KeyStoreUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Tombstone:
    key_id: str
    erasure_id: str
    erased_at: datetime
    erased_by: str
    reason: str


def keystore_url(settings: Settings) -> str:
    return settings.keystore.database_url or settings.database_url


def subject_digest(digest_key: bytes, subject_id: str) -> bytes:
    """The subject as the key store knows it: a keyed digest, useless without the digest key."""
    if not subject_id or len(subject_id) > MAX_SUBJECT_CHARS:
        raise ValueError(f"a subject id has 1 to {MAX_SUBJECT_CHARS} characters, got {len(subject_id)}")
    return hmac.new(digest_key, subject_id.encode(), hashlib.sha256).digest()


def new_key_id() -> str:
    # Random, so the key id says nothing about the subject and cannot be recomputed from it.
    return f"k-{secrets.token_hex(16)}"


def dead_rows_kept(vacuum_details: Iterable[str]) -> int:
    """Dead rows VACUUM (VERBOSE) says it had to keep (the server's messages in English, lc_messages=C)."""
    return sum(int(m.group(1)) for d in vacuum_details for m in _KEPT_DEAD_ROWS.finditer(d))


def keystore_ddl() -> str:
    return (resources.files("services.privacy") / "keystore.sql").read_text()


class KeyStore:
    def __init__(
        self, conn: psycopg.AsyncConnection, schema: str, digest_key: bytes, scrub_timeout_s: float = 120.0
    ) -> None:
        self.conn, self.schema, self._digest_key = conn, schema, digest_key
        self._scrub_timeout_s = scrub_timeout_s

    @classmethod
    async def connect(cls, settings: Settings) -> "KeyStore":
        try:
            conn = await psycopg.AsyncConnection.connect(keystore_url(settings), autocommit=True)
        except psycopg.OperationalError as error:
            raise KeyStoreUnavailable(
                f"cannot reach the key store at KEYSTORE_DATABASE_URL ({error}); start the local stack with "
                "`make up` or point the variable at a database"
            ) from error
        store = cls(
            conn,
            settings.keystore.schema,
            settings.keystore.subject_digest_key.encode(),
            settings.keystore.scrub_timeout_s,
        )
        await store._ensure_tables()
        return store

    async def close(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> "KeyStore":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _ensure_tables(self) -> None:
        # Only when missing: a key store role may use the tables without the right to create them.
        cur = await self.conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
            (f'"{self.schema}".subject_keys', f'"{self.schema}".erased_keys'),
        )
        if (await cur.fetchone())[0]:
            return
        async with self.conn.transaction():
            await self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (KEYSTORE_LOCK,))
            await self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            await self.conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.schema)))
            await self.conn.execute(keystore_ddl())

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    async def key_for_subject(self, subject_id: str) -> SubjectKey:
        """The subject's key, created on first use (again after an erasure: a new key, new data)."""
        digest = subject_digest(self._digest_key, subject_id)
        if found := await self._key_of(digest):
            return found
        candidate = new_key(new_key_id())
        # Two clients sealing for a new subject at once: the unique digest lets one key win.
        await self.conn.execute(
            sql.SQL(
                "INSERT INTO {} (key_id, subject_digest, key) VALUES (%s, %s, %s) "
                "ON CONFLICT (subject_digest) DO NOTHING"
            ).format(self._table("subject_keys")),
            (candidate.key_id, digest, candidate.key),
        )
        return await self._key_of(digest)

    async def _key_of(self, digest: bytes) -> SubjectKey | None:
        cur = await self.conn.execute(
            sql.SQL("SELECT key_id, key FROM {} WHERE subject_digest = %s").format(self._table("subject_keys")),
            (digest,),
        )
        row = await cur.fetchone()
        return SubjectKey(row[0], bytes(row[1])) if row else None

    async def keys(self, key_ids: Iterable[str]) -> dict[str, SubjectKey]:
        """The keys asked for; a key that is not there raises KeyUnavailable, saying whether it was erased."""
        wanted = sorted(set(key_ids))
        if not wanted:
            return {}
        cur = await self.conn.execute(
            sql.SQL("SELECT key_id, key FROM {} WHERE key_id = ANY(%s)").format(self._table("subject_keys")), (wanted,)
        )
        found = {key_id: SubjectKey(key_id, bytes(key)) for key_id, key in await cur.fetchall()}
        missing = [k for k in wanted if k not in found]
        if missing:
            cur = await self.conn.execute(
                sql.SQL("SELECT key_id FROM {} WHERE key_id = ANY(%s)").format(self._table("erased_keys")), (missing,)
            )
            erased = {row[0] for row in await cur.fetchall()}
            first = missing[0]
            raise KeyUnavailable(
                f"key {first} was destroyed when its data subject was erased: what it sealed cannot be read"
                if first in erased
                else f"key {first} is not in the key store (schema {self.schema})",
                key_id=first,
                erased=first in erased,
            )
        return found

    async def destroy_subject(
        self, subject_id: str, *, erasure_id: str, erased_by: str, reason: str, now: datetime
    ) -> tuple[list[Tombstone], str | None]:
        """Delete the subject's key(s), leaving tombstones without the subject, then scrub the table.

        Returns the tombstones and, when the bytes of a deleted key may still be in the table's
        files, why (None: scrubbed).
        """
        digest = subject_digest(self._digest_key, subject_id)
        async with self.conn.transaction():
            cur = await self.conn.execute(
                sql.SQL("DELETE FROM {} WHERE subject_digest = %s RETURNING key_id").format(
                    self._table("subject_keys")
                ),
                (digest,),
            )
            destroyed = [Tombstone(row[0], erasure_id, now, erased_by, reason) for row in await cur.fetchall()]
            for stone in destroyed:
                await self.conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (key_id, erasure_id, erased_at, erased_by, reason) VALUES (%s, %s, %s, %s, %s)"
                    ).format(self._table("erased_keys")),
                    (stone.key_id, stone.erasure_id, stone.erased_at, stone.erased_by, stone.reason),
                )
            cur = await self.conn.execute("SELECT pg_current_xact_id()::text::bigint")
            deleted_by = (await cur.fetchone())[0]
        # Scrubbed even when nothing was deleted now, so erasing again finishes what an earlier
        # erasure could not (a role that does not own the table, a transaction left open).
        return destroyed, await self._scrub(deleted_by)

    async def _scrub(self, deleted_by: int) -> str | None:
        """Rewrite the key table without the deleted rows; None when done, else why not.

        A DELETE leaves the row as a dead tuple in the table's pages. VACUUM FULL writes a fresh
        file of the rows it must keep and truncates the old one, but it must keep a deleted row
        that a transaction older than the delete could still see: so first wait until every such
        transaction has ended, then rewrite, and check that no dead row was kept.
        """
        deadline = time.monotonic() + self._scrub_timeout_s
        while True:
            if not await self._older_transactions_ended(deleted_by, deadline):
                return (
                    f"transactions older than the erasure were still open after {self._scrub_timeout_s:g}s "
                    "(see pg_stat_activity)"
                )
            notices = await self._vacuum_full_verbose()
            if any(severity == "WARNING" for severity, _ in notices):
                return f"this role does not own {self.schema}.subject_keys, so it cannot rewrite it"
            if dead_rows_kept([detail for _, detail in notices]) == 0:
                return None
            if time.monotonic() > deadline:
                return "VACUUM FULL kept dead rows that an open transaction may still see"
            await asyncio.sleep(SCRUB_POLL_S)

    async def _older_transactions_ended(self, xid: int, deadline: float) -> bool:
        while True:
            cur = await self.conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            if (await cur.fetchone())[0] > xid:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(SCRUB_POLL_S)

    async def _vacuum_full_verbose(self) -> list[tuple[str, str]]:
        notices: list[tuple[str, str]] = []

        def on_notice(diagnostic) -> None:
            notices.append((diagnostic.severity_nonlocalized, diagnostic.message_detail or ""))

        self.conn.add_notice_handler(on_notice)
        try:
            await self.conn.execute(sql.SQL("VACUUM (FULL, VERBOSE) {}").format(self._table("subject_keys")))
        finally:
            self.conn.remove_notice_handler(on_notice)
        return notices

    async def unannounced(self) -> list[Tombstone]:
        cur = await self.conn.execute(
            sql.SQL(
                "SELECT key_id, erasure_id, erased_at, erased_by, reason FROM {} "
                "WHERE announced_at IS NULL ORDER BY erased_at, key_id"
            ).format(self._table("erased_keys"))
        )
        return [Tombstone(*row) for row in await cur.fetchall()]

    async def mark_announced(self, key_ids: Iterable[str], now: datetime) -> None:
        await self.conn.execute(
            sql.SQL("UPDATE {} SET announced_at = %s WHERE key_id = ANY(%s)").format(self._table("erased_keys")),
            (now, sorted(set(key_ids))),
        )
