"""Least-privilege PostgreSQL roles: `orchestrator db roles`, run as the admin of DATABASE_URL.

- `<prefix>_owner` (NOLOGIN) owns the schemas and their tables: no role an application logs in
  as owns a schema, so none can drop, alter or re-grant what it uses.
- `<prefix>_audit_writer` may INSERT and SELECT the audit log, never UPDATE, DELETE or TRUNCATE it.
- `<prefix>_analyst` may read the read models and the audit log, write nothing, and not even
  see the key store.
- `<prefix>_keystore` may use the key store, whose tables it owns (an erasure scrubs them
  with VACUUM FULL, an owner's right), and nothing else.

Every statement is idempotent, so the command is re-run after the key store appears. A replay
swaps in a read-model schema the admin built; an event trigger hands it over and re-grants it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from services.audit.store import ensure_schema
from services.settings import Settings


@dataclass(frozen=True)
class Roles:
    owner: str
    audit_writer: str
    analyst: str
    keystore: str

    @classmethod
    def named(cls, prefix: str) -> "Roles":
        return cls(f"{prefix}_owner", f"{prefix}_audit_writer", f"{prefix}_analyst", f"{prefix}_keystore")


@dataclass
class Applied:
    roles: Roles
    granted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"roles": self.roles.__dict__, "granted": self.granted, "notes": self.notes}

    def as_text(self) -> str:
        return "\n".join(
            [f"roles: {', '.join(self.roles.__dict__.values())}", *self.granted, *(f"note: {n}" for n in self.notes)]
        )


def create_role(name: str) -> sql.Composed:
    """CREATE ROLE that tolerates the role existing already (two runs at once included)."""
    return sql.SQL("DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$").format(
        sql.Identifier(name)
    )


def login(name: str, password: str) -> sql.Composed:
    if not password:
        return sql.SQL("ALTER ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT").format(
            sql.Identifier(name)
        )
    return sql.SQL("ALTER ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT").format(
        sql.Identifier(name), sql.Literal(password)
    )


def owned_by(
    schema: str, owner: str, relations: list[tuple[str, str]], relations_owner: str | None = None
) -> list[sql.Composed]:
    """Hand the schema, and each of its relations (name, relkind), to the owner role."""
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    statements = [sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), sql.Identifier(owner))]
    statements += [
        sql.SQL("ALTER {} {} OWNER TO {}").format(
            sql.SQL(kinds[kind]), sql.Identifier(schema, name), sql.Identifier(relations_owner or owner)
        )
        for name, kind in relations
        if kind in kinds
    ]
    return statements


def audit_grants(roles: Roles, schema: str) -> list[sql.Composed]:
    s, table = sql.Identifier(schema), sql.Identifier(schema, "audit_log")
    writer, analyst = sql.Identifier(roles.audit_writer), sql.Identifier(roles.analyst)
    return [
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(s),
        sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}, {}").format(table, writer, analyst),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(s, writer, analyst),
        sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(table, writer),
        sql.SQL("GRANT SELECT ON {} TO {}").format(table, analyst),
    ]


def read_model_grants(roles: Roles, schema: str, admin: str) -> list[sql.Composed]:
    s, analyst = sql.Identifier(schema), sql.Identifier(roles.analyst)
    others = sql.SQL(", ").join(map(sql.Identifier, (roles.audit_writer, roles.keystore)))
    return [
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC, {}").format(s, others),
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM PUBLIC, {}, {}").format(s, analyst, others),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, analyst),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(s, analyst),
        # Tables a later migration adds (the projector migrates as the admin) are readable at once.
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            sql.Identifier(admin), s, analyst
        ),
    ]


def keystore_grants(roles: Roles, schema: str) -> list[sql.Composed]:
    s, keystore = sql.Identifier(schema), sql.Identifier(roles.keystore)
    others = sql.SQL(", ").join(map(sql.Identifier, (roles.analyst, roles.audit_writer)))
    return [
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC, {}").format(s, others),
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM PUBLIC, {}").format(s, others),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, keystore),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(s, keystore),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(s, keystore),
    ]


def regrant_on_swap(roles: Roles, schema: str, admin: str, home: str) -> list[sql.Composed]:
    """An event trigger that hands a read-model schema renamed into place to the owner and the analyst.

    Replay builds a fresh schema as the administrator and renames it over the live one: without
    this, the analyst would lose the read models at every rebuild. It acts only on a schema
    renamed to exactly `schema`, so any other DDL in the database is left alone.
    """
    function = sql.Identifier(home, f"{roles.owner}_regrant_{schema}")
    body = sql.SQL("""
DECLARE
  command record;
  relation record;
BEGIN
  FOR command IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF command.object_type = 'schema' AND command.object_identity = quote_ident({schema}) THEN
      -- ALTER SCHEMA fires this trigger again: change the owner only once.
      IF NOT EXISTS (SELECT FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                     WHERE n.nspname = {schema} AND r.rolname = {owner}) THEN
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', {schema}, {owner});
      END IF;
      FOR relation IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p', 'v', 'm', 'S') LOOP
        EXECUTE format('ALTER %s %I.%I OWNER TO %I',
                       CASE relation.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                             WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                       {schema}, relation.relname, {owner});
      END LOOP;
      EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', {schema});
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', {schema}, {analyst});
      EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', {schema}, {analyst});
      EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
                     {admin}, {schema}, {analyst});
    END IF;
  END LOOP;
END""").format(
        schema=sql.Literal(schema),
        owner=sql.Literal(roles.owner),
        analyst=sql.Literal(roles.analyst),
        admin=sql.Literal(admin),
    )
    trigger = sql.Identifier(f"{roles.owner}_regrant_{schema}")
    return [
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER "
            "SET search_path = pg_catalog AS {}"
        ).format(function, sql.Literal(body.as_string(None))),
        sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(trigger),
        sql.SQL("CREATE EVENT TRIGGER {} ON ddl_command_end WHEN TAG IN ('ALTER SCHEMA') EXECUTE FUNCTION {}()").format(
            trigger, function
        ),
    ]


async def _relations(conn: psycopg.AsyncConnection, schema: str) -> list[tuple[str, str]] | None:
    """(name, relkind) of every relation in `schema`, or None if there is no such schema."""
    cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if await cur.fetchone() is None:
        return None
    cur = await conn.execute(
        "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s ORDER BY 1",
        (schema,),
    )
    return list(await cur.fetchall())


async def apply_roles(settings: Settings) -> Applied:
    roles = Roles.named(settings.db_role_prefix)
    applied = Applied(roles)
    keystore_schema = settings.keystore.schema
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        admin, superuser = await (
            await conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        ).fetchone()
        await ensure_schema(conn, settings.audit.db_schema)
        async with conn.transaction():
            passwords = {
                roles.owner: "",
                roles.audit_writer: settings.db_audit_writer_password,
                roles.analyst: settings.db_analyst_password,
                roles.keystore: settings.db_keystore_password,
            }
            for name, password in passwords.items():
                await conn.execute(create_role(name))
                await conn.execute(login(name, password))
            # The key store's tables belong to its role: an erasure scrubs the deleted key's bytes
            # with VACUUM FULL, which only a table's owner may run. Its schema stays the owner's.
            plan = [
                (settings.audit.db_schema, None, lambda: audit_grants(roles, settings.audit.db_schema)),
                (settings.db_schema, None, lambda: read_model_grants(roles, settings.db_schema, admin)),
                (keystore_schema, roles.keystore, lambda: keystore_grants(roles, keystore_schema)),
            ]
            for schema, relations_owner, grants in plan:
                relations = await _relations(conn, schema)
                if relations is None:
                    applied.notes.append(
                        f"schema {schema} does not exist yet: re-run `orchestrator db roles` once it does"
                    )
                    continue
                for statement in owned_by(schema, roles.owner, relations, relations_owner) + grants():
                    await conn.execute(statement)
                applied.granted.append(f"{schema}: owned by {roles.owner}; " + _summary(roles, schema, settings))
            if superuser:
                for statement in regrant_on_swap(roles, settings.db_schema, admin, settings.audit.db_schema):
                    await conn.execute(statement)
                applied.granted.append(f"{settings.db_schema} swapped in by a replay: the same, by an event trigger")
            else:
                applied.notes.append(
                    f"{admin} is not a superuser, so no event trigger re-grants the read models "
                    "after a replay: re-run `orchestrator db roles` after each one"
                )
    return applied


def _summary(roles: Roles, schema: str, settings: Settings) -> str:
    if schema == settings.audit.db_schema:
        return f"audit_log: INSERT, SELECT to {roles.audit_writer}; SELECT to {roles.analyst}"
    if schema == settings.db_schema:
        return f"read models: SELECT to {roles.analyst}"
    return f"key store: its tables owned by {roles.keystore}, no other role granted anything"


async def drop_roles(conn: psycopg.AsyncConnection, roles: Roles) -> None:
    """Undo `apply_roles` for a throw-away prefix (tests, benchmarks): what the roles own or were granted, then them."""
    for role in roles.__dict__.values():
        if await (await conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (role,))).fetchone() is not None:
            await conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
