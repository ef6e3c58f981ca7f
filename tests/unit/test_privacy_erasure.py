"""Erasure without personal data: the request checked before any key goes, the event, its projection."""

from datetime import datetime, timezone

import orjson
import pytest

from events.codec import InvalidEvent, decode, encode
from events.privacy import SubjectErased
from projections.handlers import ops_for
from projections.ops import Insert
from services.privacy.cli import CommandError, parse_requirement, parse_sensitive
from services.privacy.erasure import check_erasure_request, erasure_event
from services.privacy.keystore import Tombstone
from services.privacy.sealing import new_key, seal_fields
from services.settings import ConfigError, Settings
from tests import factories as f

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
STONE = Tombstone("k-0123abcd", "erasure-1", NOW, "operator:alice", "subject-request")


def test_an_unknown_reason_is_refused_before_any_key_is_destroyed():
    with pytest.raises(ValueError, match="reason must be one of subject-request, consent-withdrawn"):
        check_erasure_request("operator:alice", "because")


def test_an_erasure_needs_someone_who_erased():
    with pytest.raises(ValueError, match="erased_by"):
        check_erasure_request("", "subject-request")


def test_an_erasure_event_with_free_text_for_a_reason_is_invalid_and_so_dead_lettered():
    raw = orjson.loads(encode(erasure_event(STONE, producer="cli")))
    raw["body"]["reason"] = "Alice Martin asked by phone"
    with pytest.raises(InvalidEvent, match="body.reason"):
        decode(orjson.dumps(raw))


def test_an_erasure_is_announced_by_key_only_and_the_same_event_each_time():
    event = erasure_event(STONE, producer="cli")

    assert event.key == "k-0123abcd" and event.body == SubjectErased(
        key_id="k-0123abcd", erasure_id="erasure-1", erased_at=NOW, erased_by="operator:alice", reason="subject-request"
    )
    assert event.event_id == erasure_event(STONE, producer="cli").event_id
    assert decode(encode(event)) == event


def test_an_erasure_is_projected_to_one_row_per_key():
    event = erasure_event(STONE, producer="cli")
    assert ops_for(event) == [
        Insert(
            "erasures",
            {
                "key_id": "k-0123abcd",
                "erasure_id": "erasure-1",
                "erased_at": NOW,
                "erased_by": "operator:alice",
                "reason": "subject-request",
                "event_id": event.event_id,
                "recorded_at": event.occurred_at,
            },
            key=("key_id",),
        )
    ]


def test_the_projector_stores_sealed_fields_as_they_came():
    sealed = seal_fields(
        {"email": "alice@example.com", "prompt": "hi"}, task_id="task-1", keys={"email": new_key("k-alice")}
    )
    submitted = f.submitted("task-1")
    submitted = submitted.model_copy(update={"body": submitted.body.model_copy(update={"payload": sealed})})

    [upsert] = ops_for(submitted)
    assert upsert.values["payload"] == sealed


# --- the command line ---------------------------------------------------------------------


def test_a_sensitive_field_without_a_subject_is_refused():
    with pytest.raises(CommandError, match="names no data subject"):
        parse_sensitive(["email"], None)


def test_a_subject_without_sensitive_fields_is_refused():
    with pytest.raises(CommandError, match="--subject without --sensitive"):
        parse_sensitive([], "alice")


def test_a_field_named_twice_is_refused():
    with pytest.raises(CommandError, match="twice"):
        parse_sensitive(["email", "email=bob"], "alice")


def test_sensitive_fields_take_the_default_subject_or_their_own():
    assert parse_sensitive(["email", "phone=bob"], "alice") == {"email": "alice", "phone": "bob"}


def test_a_requirement_may_name_a_minimum_proficiency():
    assert (parse_requirement("python:0.5").name, parse_requirement("python:0.5").min_proficiency) == ("python", 0.5)
    with pytest.raises(CommandError, match="CAPABILITY:MIN"):
        parse_requirement("python:lots")


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("KEYSTORE_DATABASE_URL", "mysql://x", "KEYSTORE_DATABASE_URL must be a postgresql:// URL"),
        ("KEYSTORE_SCHEMA", "Key Store", "KEYSTORE_SCHEMA must be a lower-case SQL identifier"),
        ("KEYSTORE_SUBJECT_DIGEST_KEY", "short", "at least 16 characters"),
    ],
)
def test_bad_key_store_settings_are_named(variable, value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({variable: value})


def test_the_key_store_defaults_to_the_read_models_database():
    from services.privacy.keystore import keystore_url

    settings = Settings.from_env({})
    assert settings.keystore.schema == "keystore" and keystore_url(settings) == settings.database_url
