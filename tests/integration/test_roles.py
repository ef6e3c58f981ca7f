"""Least-privilege roles on the real PostgreSQL: each role tries what it must not, and is refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from bench.demo.feed import scripted_feed
from services import kafka
from services.audit.bootstrap import auditor_running, run_until
from services.audit.chain import Entry, Head, extend
from services.audit.roles import Roles, apply_roles
from services.audit.store import AuditStore
from services.audit.verify import verify
from services.privacy.keystore import KeyStore
from services.projector.bootstrap import open_view
from services.replay import replay
from tests.e2e.helpers import publish_all, wait_for
from tests.signing import enrolments

pytestmark = pytest.mark.integration
REFUSED = psycopg.errors.InsufficientPrivilege


@pytest.fixture
async def db(settings):
    tag = settings.db_schema.removeprefix("test_")
    password = uuid.uuid4().hex
    s = settings.replace(
        db_role_prefix=f"t{tag}",
        audit_db_schema=f"audit_{tag}",
        keystore_schema=f"keystore_{tag}",
        db_audit_writer_password=password,
        db_analyst_password=password,
        db_keystore_password=password,
    )
    view = await open_view(s)  # the read models, migrated as the projector does
    await view.close()
    yield s
    roles = Roles.named(s.db_role_prefix)
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        for schema in (s.db_schema, s.audit.db_schema, s.keystore.schema):
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        for role in roles.__dict__.values():
            await conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        cur = await conn.execute("SELECT evtname FROM pg_event_trigger WHERE evtname LIKE %s", (f"{roles.owner}%",))
        assert await cur.fetchall() == [], "the event trigger went with the audit schema"


async def as_role(settings, role: str) -> psycopg.AsyncConnection:
    """The admin's connection, narrowed to `role`: from here on PostgreSQL checks that role's rights only."""
    conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    return conn


def login_url(settings, role: str, password: str) -> str:
    parts = urlsplit(settings.database_url)
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))


async def make_keystore(settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(settings.keystore.schema)))
        await conn.execute(
            sql.SQL("CREATE TABLE {} (key_id text PRIMARY KEY, secret bytea)").format(
                sql.Identifier(settings.keystore.schema, "subject_keys")
            )
        )
        await conn.execute(
            sql.SQL("INSERT INTO {} VALUES ('k1', 'secret')").format(
                sql.Identifier(settings.keystore.schema, "subject_keys")
            )
        )


async def allowed(conn, *statements: str) -> list[str]:
    """The statements PostgreSQL did not refuse: each one must be in a test that expects none."""
    done = []
    for statement in statements:
        try:
            await conn.execute(statement)
        except REFUSED:
            continue
        done.append(statement)
    return done


async def test_the_audit_writer_cannot_update_delete_truncate_or_drop_the_audit_log(db):
    roles = Roles.named(db.db_role_prefix)
    await apply_roles(db)
    table = f'"{db.audit.db_schema}".audit_log'

    # It logs in with its own password and appends, as `serve audit` does with AUDIT_DATABASE_URL.
    store = await AuditStore.connect(login_url(db, roles.audit_writer, db.db_audit_writer_password), db.audit.db_schema)
    rows, _ = extend(Head(), [Entry("t", 0, 0, 0, b"k", b"v")])
    await store.append(rows)
    writer = store.conn

    assert (
        await allowed(
            writer,
            f"UPDATE {table} SET value = 'x'",
            f"DELETE FROM {table}",
            f"TRUNCATE {table}",
            f"DROP TABLE {table}",
            f"ALTER TABLE {table} DISABLE TRIGGER ALL",
            f'CREATE TABLE "{db.audit.db_schema}".sneaky (x int)',
            f'SELECT * FROM "{db.db_schema}".tasks',
        )
        == []
    )
    assert (await (await writer.execute(f"SELECT count(*) FROM {table}")).fetchone())[0] == 1
    await store.close()


async def test_the_analyst_reads_projections_but_writes_nothing_and_never_sees_the_key_store(db):
    roles = Roles.named(db.db_role_prefix)
    await make_keystore(db)
    await apply_roles(db)
    analyst = await psycopg.AsyncConnection.connect(
        login_url(db, roles.analyst, db.db_analyst_password), autocommit=True
    )
    tasks = f'"{db.db_schema}".tasks'
    try:
        assert (
            await allowed(
                analyst,
                f'SELECT * FROM "{db.keystore.schema}".subject_keys',
                f"INSERT INTO {tasks} (task_id) VALUES ('forged')",
                f"UPDATE {tasks} SET status = 'completed'",
                f'DELETE FROM "{db.audit.db_schema}".audit_log',
                f'INSERT INTO "{db.audit.db_schema}".audit_log (seq) VALUES (1)',
                f'CREATE TABLE "{db.db_schema}".mine (x int)',
            )
            == []
        )
        await analyst.execute(f"SELECT count(*) FROM {tasks}")
        await analyst.execute(f'SELECT count(*) FROM "{db.db_schema}".agent_memory')  # views too
        await analyst.execute(f'SELECT label, value FROM "{db.db_schema}".insights_practices')  # and their functions
        await analyst.execute(f'SELECT count(*) FROM "{db.audit.db_schema}".audit_log')
    finally:
        await analyst.close()


async def test_the_keystore_role_uses_the_key_store_and_nothing_else(db):
    roles = Roles.named(db.db_role_prefix)
    await make_keystore(db)
    await apply_roles(db)
    keystore = await as_role(db, roles.keystore)
    try:
        await keystore.execute(f'SELECT * FROM "{db.keystore.schema}".subject_keys')
        await keystore.execute(f"DELETE FROM \"{db.keystore.schema}\".subject_keys WHERE key_id = 'k1'")
        # An erasure's scrub: PostgreSQL only warns, and skips the table, when the role does not own it.
        notices = []
        keystore.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        await keystore.execute(f'VACUUM FULL "{db.keystore.schema}".subject_keys')
        assert notices == []
        assert (
            await allowed(
                keystore,
                f'SELECT * FROM "{db.db_schema}".tasks',
                f'SELECT * FROM "{db.audit.db_schema}".audit_log',
                f'CREATE TABLE "{db.keystore.schema}".other (x int)',
                f'ALTER SCHEMA "{db.keystore.schema}" RENAME TO elsewhere',
            )
            == []
        )
    finally:
        await keystore.close()


async def test_no_login_role_owns_a_schema_and_a_rerun_picks_up_a_key_store_created_later(db):
    roles = Roles.named(db.db_role_prefix)
    first = await apply_roles(db)
    await make_keystore(db)
    second = await apply_roles(db)

    assert any(db.keystore.schema in note for note in first.notes)
    assert not any(db.keystore.schema in note for note in second.notes)
    async with await psycopg.AsyncConnection.connect(db.database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT n.nspname, r.rolname, r.rolcanlogin FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
            "WHERE n.nspname = ANY(%s)",
            ([db.db_schema, db.audit.db_schema, db.keystore.schema],),
        )
        owners = {name: (owner, can_login) for name, owner, can_login in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT DISTINCT schemaname, tableowner FROM pg_tables WHERE schemaname = ANY(%s)",
            ([db.db_schema, db.audit.db_schema, db.keystore.schema],),
        )
        table_owners = set(await cur.fetchall())
    assert owners == {schema: (roles.owner, False) for schema in (db.db_schema, db.audit.db_schema, db.keystore.schema)}
    assert table_owners == {
        (db.db_schema, roles.owner),
        (db.audit.db_schema, roles.owner),
        (db.keystore.schema, roles.keystore),
    }
    keystore = await as_role(db, roles.keystore)
    try:
        await keystore.execute(f'SELECT * FROM "{db.keystore.schema}".subject_keys')
    finally:
        await keystore.close()


async def test_the_audit_projector_runs_as_its_writer_and_an_analyst_verifies_the_chain(db, tmp_path):
    roles = Roles.named(db.db_role_prefix)
    await apply_roles(db)
    s = db.replace(
        audit_database_url=login_url(db, roles.audit_writer, db.db_audit_writer_password),
        audit_checkpoint_dir=str(tmp_path / "checkpoints"),
        audit_signing_key_file=str(tmp_path / "key.pem"),
    )
    await kafka.ensure_topics(s)
    events = list(scripted_feed(agents=2, tasks=20, seed=4))
    await publish_all(s, events)

    stop = asyncio.Event()
    async with auditor_running(s, stop) as auditor:
        running = asyncio.create_task(run_until(auditor, stop))
        # the test's events and, where identities are verified, the key enrolments made for them
        logged = len(events) + enrolments(s)
        await wait_for(lambda: _audited(db, logged), what="every record audited by the writer")
        stop.set()
        await running
    verdict = await verify(s.replace(audit_database_url=login_url(db, roles.analyst, db.db_analyst_password)))

    assert verdict.ok and verdict.rows == logged


async def _audited(settings, n: int) -> bool:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(settings.audit.db_schema, "audit_log"))
        )
        return (await cur.fetchone())[0] >= n


async def test_after_a_replay_swaps_in_a_rebuilt_schema_the_analyst_still_reads_it_and_still_writes_nothing(db):
    roles = Roles.named(db.db_role_prefix)
    await apply_roles(db)
    await kafka.ensure_topics(db)
    await publish_all(db, list(scripted_feed(agents=2, tasks=5, seed=5)))

    report = await replay(db)

    assert report.swapped
    analyst = await psycopg.AsyncConnection.connect(
        login_url(db, roles.analyst, db.db_analyst_password), autocommit=True
    )
    try:
        cur = await analyst.execute(f'SELECT count(*) FROM "{db.db_schema}".tasks')
        assert (await cur.fetchone())[0] == 5
        assert await allowed(analyst, f"INSERT INTO \"{db.db_schema}\".tasks (task_id) VALUES ('forged')") == []
    finally:
        await analyst.close()
    async with await psycopg.AsyncConnection.connect(db.database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = %s",
            (db.db_schema,),
        )
        assert (await cur.fetchone())[0] == roles.owner


async def test_the_key_store_works_under_its_own_role_and_an_erasure_scrubs_the_key_table(db):
    roles = Roles.named(db.db_role_prefix)
    async with await KeyStore.connect(db) as created_by_the_admin:
        await created_by_the_admin.key_for_subject("subject-1")
    await apply_roles(db)
    as_keystore = db.replace(keystore_database_url=login_url(db, roles.keystore, db.db_keystore_password))
    as_analyst = db.replace(keystore_database_url=login_url(db, roles.analyst, db.db_analyst_password))

    async with await KeyStore.connect(as_keystore) as store:
        await store.key_for_subject("subject-2")
        destroyed, unscrubbed = await store.destroy_subject(
            "subject-1",
            erasure_id="erasure-1",
            erased_by="test",
            reason="subject-request",
            now=datetime.now(timezone.utc),
        )
    assert len(destroyed) == 1
    assert unscrubbed is None or "does not own" not in unscrubbed, unscrubbed
    with pytest.raises(REFUSED):
        async with await KeyStore.connect(as_analyst) as store:
            await store.key_for_subject("subject-2")
