"""An agent reads the plaintext of its task's sealed fields; the key store is a fake here."""

import pytest

from events.tasks import TaskAssigned
from services.privacy.keystore import subject_digest
from services.privacy.sealing import KeyUnavailable, SealingError, new_key, seal_fields
from services.sdk.task import Task

ALICE = new_key("k-alice")


class FakeKeyStore:
    def __init__(self, *keys, erased=()):
        self.stored = {k.key_id: k for k in keys}
        self.erased = set(erased)

    async def keys(self, key_ids):
        for key_id in key_ids:
            if key_id not in self.stored:
                raise KeyUnavailable(
                    f"key {key_id} was destroyed" if key_id in self.erased else "unknown",
                    key_id=key_id,
                    erased=key_id in self.erased,
                )
        return {k: self.stored[k] for k in key_ids}


def assigned(task_id="task-1", sealed_for="task-1") -> Task:
    payload = seal_fields({"prompt": "hi", "email": "alice@example.com"}, task_id=sealed_for, keys={"email": ALICE})

    async def hand_off(body):
        raise AssertionError("no hand-off expected")

    body = TaskAssigned(task_id=task_id, agent_id="agent-1", attempt=1, capability="python", payload=payload)
    return Task.of(body, "event-1", hand_off)


async def test_after_erasure_reveal_fails_saying_the_subject_was_erased():
    with pytest.raises(KeyUnavailable, match="destroyed") as raised:
        await assigned().reveal("email", FakeKeyStore(erased={"k-alice"}))
    assert raised.value.erased


async def test_a_field_sealed_for_another_task_is_not_revealed():
    with pytest.raises(SealingError, match="another task or field"):
        await assigned(task_id="task-2", sealed_for="task-1").reveal("email", FakeKeyStore(ALICE))


async def test_revealing_a_field_the_payload_lacks_names_it():
    with pytest.raises(KeyError, match="no payload field 'phone'"):
        await assigned().reveal("phone", FakeKeyStore(ALICE))


async def test_an_agent_reveals_a_sealed_field_and_plain_fields_as_they_are():
    task, store = assigned(), FakeKeyStore(ALICE)

    assert task.sealed_fields == ("email",)
    assert await task.reveal("email", store) == "alice@example.com"
    assert await task.reveal("prompt", store) == "hi"


def test_the_key_store_knows_a_subject_only_by_a_keyed_digest():
    digest = subject_digest(b"secret-one-0123456", "alice")

    assert b"alice" not in digest and len(digest) == 32
    assert digest == subject_digest(b"secret-one-0123456", "alice")
    assert digest != subject_digest(b"secret-two-0123456", "alice")
    with pytest.raises(ValueError, match="1 to 256"):
        subject_digest(b"secret-one-0123456", "")


def test_dead_rows_a_rewrite_had_to_keep_are_counted_from_vacuum_verbose():
    from services.privacy.keystore import dead_rows_kept

    kept = "1 dead row versions cannot be removed yet.\nCPU: user: 0.00 s, system: 0.00 s, elapsed: 0.00 s."
    assert dead_rows_kept(["", kept, "2 dead row versions cannot be removed yet."]) == 3
    assert dead_rows_kept(["0 dead row versions cannot be removed yet.", ""]) == 0
