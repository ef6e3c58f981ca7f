"""Sealing payload fields per data subject: what must not open first, then what must."""

import base64

import orjson
import pytest

from services.privacy.sealing import (
    KeyUnavailable,
    SealingError,
    SubjectKey,
    is_sealed,
    new_key,
    open_fields,
    open_value,
    seal_fields,
    seal_value,
    sealed_key_ids,
)

ALICE = new_key("k-alice")
BOB = new_key("k-bob")
PAYLOAD = {"prompt": "Write to the customer", "email": "alice@example.com", "address": {"city": "Lyon"}}


def sealed(payload=PAYLOAD, task_id="task-1", keys=None) -> dict:
    return seal_fields(payload, task_id=task_id, keys=keys or {"email": ALICE, "address": ALICE})


def flip_last_byte(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# --- what must not open ---------------------------------------------------------------


def test_a_tampered_ciphertext_does_not_open():
    given = sealed()
    tampered = {**given, "email": {**given["email"], "ct": flip_last_byte(given["email"]["ct"])}}
    with pytest.raises(SealingError, match="does not open with key k-alice: the ciphertext was altered"):
        open_fields(tampered, task_id="task-1", keys={"k-alice": ALICE})


def test_a_tampered_nonce_does_not_open():
    given = sealed()
    tampered = {**given, "email": {**given["email"], "nonce": flip_last_byte(given["email"]["nonce"])}}
    with pytest.raises(SealingError, match="does not open"):
        open_fields(tampered, task_id="task-1", keys={"k-alice": ALICE})


def test_a_sealed_field_copied_into_another_task_does_not_open():
    given = sealed(task_id="task-1")
    with pytest.raises(SealingError, match="sealed for another task or field"):
        open_value(given["email"], ALICE, task_id="task-2", field="email")


def test_sealed_fields_swapped_between_fields_do_not_open():
    given = sealed()
    swapped = {**given, "email": given["address"], "address": given["email"]}
    with pytest.raises(SealingError, match="field 'email' of task task-1 does not open"):
        open_fields(swapped, task_id="task-1", keys={"k-alice": ALICE})


def test_a_field_relabelled_with_another_key_id_does_not_open_even_with_that_key():
    given = sealed()
    relabelled = {**given["email"], "kid": "k-bob"}
    with pytest.raises(SealingError, match="does not open with key k-bob"):
        open_value(relabelled, BOB, task_id="task-1", field="email")


def test_the_wrong_key_does_not_open():
    impostor = SubjectKey("k-alice", bytes(32))
    with pytest.raises(SealingError, match="does not open with key k-alice"):
        open_fields(sealed(), task_id="task-1", keys={"k-alice": impostor})


def test_a_missing_key_is_a_clear_error_naming_the_key():
    with pytest.raises(KeyUnavailable, match="no key k-alice for field 'email'") as raised:
        open_fields(sealed(), task_id="task-1", keys={})
    assert raised.value.key_id == "k-alice"


@pytest.mark.parametrize(
    "broken, message",
    [
        ({"$sealed": "rot13", "kid": "k-alice", "nonce": "", "ct": ""}, "only aes-256-gcm is known"),
        ({"$sealed": "aes-256-gcm", "kid": "k-alice"}, "not a well-formed sealed value"),
        ({"$sealed": "aes-256-gcm", "kid": "k-alice", "nonce": "%%%", "ct": "AAAA"}, "not base64"),
        ({"$sealed": "aes-256-gcm", "kid": "k-alice", "nonce": "AAAA", "ct": "AAAA"}, "3-byte nonce"),
    ],
)
def test_a_malformed_sealed_value_is_a_clear_error(broken, message):
    with pytest.raises(SealingError, match=message):
        open_fields({"email": broken}, task_id="task-1", keys={"k-alice": ALICE})


def test_a_sensitive_field_that_is_not_in_the_payload_is_refused():
    with pytest.raises(SealingError, match="not in the payload: phone"):
        seal_fields(PAYLOAD, task_id="task-1", keys={"phone": ALICE})


def test_a_field_is_not_sealed_twice():
    with pytest.raises(SealingError, match="already sealed: email"):
        seal_fields(sealed(), task_id="task-1", keys={"email": BOB})


def test_a_key_of_the_wrong_size_is_refused():
    with pytest.raises(SealingError, match="AES-256 needs 32"):
        SubjectKey("k-short", b"0123456789abcdef")


# --- what must open ---------------------------------------------------------------------


def test_sealed_fields_carry_no_plaintext_and_name_only_the_key():
    given = sealed()
    wire = orjson.dumps(given)

    assert b"alice@example.com" not in wire and b"Lyon" not in wire
    assert given["prompt"] == PAYLOAD["prompt"]
    assert set(given["email"]) == {"$sealed", "kid", "nonce", "ct"} and given["email"]["kid"] == "k-alice"
    assert sealed_key_ids(given) == {"email": "k-alice", "address": "k-alice"}


def test_sealed_fields_open_to_the_original_values():
    given = sealed(keys={"email": ALICE, "address": BOB})
    assert open_fields(given, task_id="task-1", keys={"k-alice": ALICE, "k-bob": BOB}) == PAYLOAD


def test_sealing_the_same_value_twice_gives_different_ciphertexts():
    first, second = (seal_value("alice@example.com", ALICE, task_id="t", field="f") for _ in range(2))
    assert first["ct"] != second["ct"] and first["nonce"] != second["nonce"]


def test_a_key_never_shows_in_its_repr():
    assert ALICE.key.hex() not in repr(ALICE) and "k-alice" in repr(ALICE)


def test_only_sealed_values_look_sealed():
    assert is_sealed(sealed()["email"]) and not is_sealed("x") and not is_sealed({"email": "x"})
