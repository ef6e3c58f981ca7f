"""The audit projector's decisions around the chain: what is new, when to sign, what a checkpoint holds."""

import os
from dataclasses import dataclass

import orjson
import pytest

from services.audit import checkpoints
from services.audit.app import Checkpointer
from services.audit.bootstrap import checkpointer_for
from services.audit.chain import Head
from services.audit.logic import checkpoint_due, fresh, newest_valid
from services.settings import ConfigError, Settings


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_redelivered_records_are_not_kept_again():
    stored = {("t", 0): 4}
    records = [Record("t", 0, 3), Record("t", 0, 4), Record("t", 0, 5), Record("t", 1, 0), Record("t", 0, 5)]

    kept = fresh(records, stored)

    assert [(r.partition, r.offset) for r in kept] == [(0, 5), (1, 0)]
    assert stored == {("t", 0): 4}  # the caller's positions move only once rows are committed


def test_a_checkpoint_falls_due_by_rows_or_by_time_but_never_with_nothing_new():
    assert checkpoint_due(100, 0.0, every_rows=100, every_s=60)
    assert checkpoint_due(1, 60.0, every_rows=100, every_s=60)
    assert not checkpoint_due(99, 59.9, every_rows=100, every_s=60)
    assert not checkpoint_due(0, 600.0, every_rows=100, every_s=60)


def test_checkpoints_are_signed_files_the_public_key_beside_the_key_verifies(tmp_path):
    key = checkpoints.load_or_create_signing_key(tmp_path / "keys" / "signing.pem")
    clock = FakeClock()
    checkpointer = Checkpointer(
        chain="audit", directory=tmp_path / "cp", key=key, every_rows=3, every_s=60, clock=clock
    )

    written = [checkpointer.maybe(Head(seq, bytes([seq]) * 32), f"t[0]@{seq}") for seq in (1, 2, 3, 4)]
    clock.now = 61.0
    by_time = checkpointer.maybe(Head(4, bytes([4]) * 32), "t[0]@4")
    forced = checkpointer.maybe(Head(4, bytes([4]) * 32), "t[0]@4", force=True)

    assert [w is not None for w in written] == [False, False, True, False]
    assert by_time is not None and forced is None  # nothing new since the time-based one
    found = checkpoints.read_all(tmp_path / "cp", "audit")
    public = checkpoints.load_public_key(tmp_path / "keys" / "signing.pem")
    assert [c.last_seq for _, c in found] == [3, 4]
    assert all(checkpoints.signature_valid(c, public) for _, c in found)
    assert orjson.loads(written[2].read_bytes())["last_hash"] == (bytes([3]) * 32).hex()
    assert os.stat(tmp_path / "keys" / "signing.pem").st_mode & 0o077 == 0


def test_a_restarted_writer_counts_rows_from_its_newest_valid_checkpoint(tmp_path):
    key = checkpoints.load_or_create_signing_key(tmp_path / "signing.pem")
    first = Checkpointer(chain="audit", directory=tmp_path, key=key, every_rows=5, every_s=60, clock=FakeClock())
    first.maybe(Head(5, bytes(32)), "t[0]@5")
    again = checkpoints.load_or_create_signing_key(tmp_path / "signing.pem")

    second = Checkpointer(chain="audit", directory=tmp_path, key=again, every_rows=5, every_s=60, clock=FakeClock())
    second.start_from(newest_valid(checkpoints.read_all(tmp_path, "audit"), again.public_key()))

    assert second.maybe(Head(9, bytes(32)), "t[0]@9") is None
    assert second.maybe(Head(10, bytes(32)), "t[0]@10") is not None


def test_checkpoints_of_another_chain_are_not_read(tmp_path):
    key = checkpoints.load_or_create_signing_key(tmp_path / "signing.pem")
    Checkpointer(chain="other", directory=tmp_path, key=key, every_rows=1, every_s=60).maybe(Head(1, bytes(32)), "x")

    assert checkpoints.read_all(tmp_path, "audit") == []


@pytest.mark.parametrize(
    "environ, complaint",
    [
        ({"AUDIT_DB_SCHEMA": "orchestrator"}, "AUDIT_DB_SCHEMA must differ"),
        ({"AUDIT_BATCH_SIZE": "0"}, "AUDIT_BATCH_SIZE must be a positive integer"),
        ({"AUDIT_CHECKPOINT_EVERY_S": "soon"}, "AUDIT_CHECKPOINT_EVERY_S must be a positive number"),
        ({"AUDIT_DATABASE_URL": "mysql://x"}, "AUDIT_DATABASE_URL must be a postgresql:// URL"),
        ({"DB_ROLE_PREFIX": "Bad-Prefix"}, "DB_ROLE_PREFIX must be a short lower-case SQL identifier"),
    ],
)
def test_bad_audit_settings_are_refused_with_the_variable_named(environ, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env(environ)


def test_the_audit_defaults_to_its_own_group_and_the_main_database():
    settings = Settings.from_env({"ORCHESTRATOR_TOPIC_PREFIX": "acme", "DATABASE_URL": "postgresql://h/db"})

    assert (settings.audit_group, settings.audit_url) == ("acme.audit", "postgresql://h/db")


def test_an_unusable_signing_key_is_a_clear_configuration_error(tmp_path):
    (tmp_path / "key.pem").write_text("not a key")
    settings = Settings.from_env(
        {"AUDIT_SIGNING_KEY_FILE": str(tmp_path / "key.pem"), "AUDIT_CHECKPOINT_DIR": str(tmp_path / "cp")}
    )

    with pytest.raises(ConfigError, match="AUDIT_SIGNING_KEY_FILE"):
        checkpointer_for(settings)
