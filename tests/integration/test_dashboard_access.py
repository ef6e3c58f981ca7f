"""The dashboard's connection on the real PostgreSQL: the analyst, read-only, blind to the key store."""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg
import pytest
from psycopg import sql

from services.audit.roles import Roles, apply_roles, drop_roles
from services.dashboard import database
from services.projector.bootstrap import open_view
from tests.integration.test_roles import make_keystore

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings):
    tag = settings.db_schema.removeprefix("test_")
    s = settings.replace(db_role_prefix=f"t{tag}", audit_db_schema=f"audit_{tag}", keystore_schema=f"keystore_{tag}")
    view = await open_view(s)
    await view.close()
    yield s
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        for schema in (s.db_schema, s.audit.db_schema, s.keystore.schema):
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        await drop_roles(conn, Roles.named(s.db_role_prefix))


@pytest.mark.parametrize("login", ["admin, narrowed by SET ROLE", "the analyst, with its password"])
async def test_the_dashboard_reads_as_the_analyst_and_can_neither_write_nor_see_the_key_store(db, login):
    if login.startswith("the analyst"):
        db = replace(db, db_analyst_password=uuid.uuid4().hex)
    await make_keystore(db)
    await apply_roles(db)
    conn = await database.connect(db)
    try:
        identity = await database.whoami(conn)
        assert (identity["role"], identity["read_only"]) == (Roles.named(db.db_role_prefix).analyst, True)
        assert (identity["login"] == identity["role"]) == login.startswith("the analyst")
        _, rows = await database.run(conn, "SELECT count(*) AS n FROM tasks", {})
        assert rows == [{"n": 0}]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await conn.execute("INSERT INTO tasks (task_id) VALUES ('forged')")
        await conn.execute("SET default_transaction_read_only = off")  # a page cannot, but even then:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("INSERT INTO tasks (task_id) VALUES ('forged')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(db.keystore.schema, "subject_keys")))
    finally:
        await conn.close()


async def test_without_the_analyst_role_the_dashboard_refuses_to_read(db):
    with pytest.raises(database.AnalystRoleMissing, match="orchestrator db roles"):
        await database.connect(db)
