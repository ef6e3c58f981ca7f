"""The role statements as SQL text, without a database (tests/integration/test_roles.py runs them)."""

from services.audit.roles import Roles, audit_grants, create_role, login, owned_by, regrant_on_swap

ROLES = Roles.named("acme")


def text(statements) -> list[str]:
    return [s.as_string(None) for s in statements]


def test_the_audit_writer_is_granted_insert_and_select_and_nothing_else():
    granted = [s for s in text(audit_grants(ROLES, "audit")) if s.startswith("GRANT")]

    assert 'GRANT SELECT, INSERT ON "audit"."audit_log" TO "acme_audit_writer"' in granted
    assert not any(word in s for s in granted for word in ("UPDATE", "DELETE", "TRUNCATE", "ALL"))


def test_a_role_without_a_password_cannot_log_in_and_creating_it_twice_is_harmless():
    assert text([login("acme_analyst", "")]) == [
        'ALTER ROLE "acme_analyst" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT'
    ]
    assert "LOGIN PASSWORD 'it''s'" in text([login("acme_analyst", "it's")])[0]
    assert "EXCEPTION WHEN duplicate_object THEN NULL" in text([create_role("acme_owner")])[0]


def test_relations_go_to_their_owner_and_the_schema_to_the_owner_role():
    statements = text(
        owned_by(
            "keystore",
            "acme_owner",
            [("subject_keys", "r"), ("key_seq", "S"), ("idx", "i")],
            relations_owner="acme_keystore",
        )
    )

    assert statements == [
        'ALTER SCHEMA "keystore" OWNER TO "acme_owner"',
        'ALTER TABLE "keystore"."subject_keys" OWNER TO "acme_keystore"',
        'ALTER SEQUENCE "keystore"."key_seq" OWNER TO "acme_keystore"',
    ]


def test_the_replay_trigger_acts_only_on_alter_schema_of_the_live_read_model_schema():
    function, drop, trigger = text(regrant_on_swap(ROLES, "orchestrator", "admin", "audit"))

    assert "WHEN TAG IN ('ALTER SCHEMA')" in trigger and '"audit"."acme_owner_regrant_orchestrator"' in trigger
    assert "quote_ident(''orchestrator'')" in function  # the body is one quoted literal
    assert drop == 'DROP EVENT TRIGGER IF EXISTS "acme_owner_regrant_orchestrator"'
