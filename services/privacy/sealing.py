"""Sealing payload fields per data subject: pure AES-256-GCM, no I/O.

A sealed field is a JSON object that says what it is and which key opens it:
{"$sealed": "aes-256-gcm", "kid": KEY_ID, "nonce": b64, "ct": b64}. The associated data
binds the ciphertext to its task, its field and its key, so a sealed value copied into
another task or field, or relabelled with another key id, does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ALGORITHM = "aes-256-gcm"
MARKER = "$sealed"
KEY_BYTES = 32
NONCE_BYTES = 12  # 96 bits: the size GCM is defined for; random per value, never reused with a key
_AD_CONTEXT = b"orchestrator/sealed-field/v1"


class SealingError(ValueError):
    """A field could not be sealed or opened; the message says which and why."""


class KeyUnavailable(SealingError):
    """The key a field was sealed with is not (or no longer) in the key store."""

    def __init__(self, message: str, *, key_id: str, erased: bool) -> None:
        super().__init__(message)
        self.key_id = key_id
        self.erased = erased


@dataclass(frozen=True)
class SubjectKey:
    key_id: str
    key: bytes = b""

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise SealingError(f"key {self.key_id} has {len(self.key)} bytes, AES-256 needs {KEY_BYTES}")

    def __repr__(self) -> str:  # never print key bytes into a log
        return f"SubjectKey(key_id={self.key_id!r})"


def new_key(key_id: str) -> SubjectKey:
    return SubjectKey(key_id, AESGCM.generate_key(bit_length=KEY_BYTES * 8))


def is_sealed(value: Any) -> bool:
    return isinstance(value, Mapping) and MARKER in value


def associated_data(task_id: str, field: str, key_id: str) -> bytes:
    # Length-prefixed parts, so ("a:b", "c") and ("a", "b:c") can never collide.
    parts = (_AD_CONTEXT, task_id.encode(), field.encode(), key_id.encode())
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def seal_value(value: Any, key: SubjectKey, *, task_id: str, field: str, nonce: bytes | None = None) -> dict:
    nonce = nonce or os.urandom(NONCE_BYTES)
    plaintext = orjson.dumps(value)
    ciphertext = AESGCM(key.key).encrypt(nonce, plaintext, associated_data(task_id, field, key.key_id))
    return {MARKER: ALGORITHM, "kid": key.key_id, "nonce": _b64(nonce), "ct": _b64(ciphertext)}


def open_value(sealed: Mapping, key: SubjectKey, *, task_id: str, field: str) -> Any:
    nonce, ciphertext = _parts(sealed, field)
    if sealed["kid"] != key.key_id:
        raise SealingError(f"field {field!r} is sealed with key {sealed['kid']}, not {key.key_id}")
    try:
        plaintext = AESGCM(key.key).decrypt(nonce, ciphertext, associated_data(task_id, field, key.key_id))
    except InvalidTag:
        raise SealingError(
            f"field {field!r} of task {task_id} does not open with key {key.key_id}: the ciphertext was altered, "
            "or it was sealed for another task or field"
        ) from None
    return orjson.loads(plaintext)


def key_id_of(sealed: Mapping, field: str) -> str:
    _parts(sealed, field)
    return sealed["kid"]


def check_sensitive(payload: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Every sensitive field is in the payload and not sealed yet."""
    fields = set(fields)
    if not fields:
        raise SealingError("no field is marked sensitive")
    missing = sorted(fields - set(payload))
    if missing:
        raise SealingError(f"sensitive field(s) not in the payload: {', '.join(missing)}")
    already = sorted(f for f in fields if is_sealed(payload[f]))
    if already:
        raise SealingError(f"field(s) already sealed: {', '.join(already)}")


def seal_fields(payload: Mapping[str, Any], *, task_id: str, keys: Mapping[str, SubjectKey]) -> dict:
    """The payload with each field named in `keys` sealed with that field's subject key."""
    check_sensitive(payload, keys)
    return {
        name: seal_value(value, keys[name], task_id=task_id, field=name) if name in keys else value
        for name, value in payload.items()
    }


def sealed_key_ids(payload: Mapping[str, Any]) -> dict[str, str]:
    """field -> key id of every sealed field of the payload."""
    return {name: key_id_of(value, name) for name, value in payload.items() if is_sealed(value)}


def open_fields(payload: Mapping[str, Any], *, task_id: str, keys: Mapping[str, SubjectKey]) -> dict:
    """The payload with every sealed field opened; `keys` maps key id to key."""
    opened = {}
    for name, value in payload.items():
        if not is_sealed(value):
            opened[name] = value
            continue
        key_id = key_id_of(value, name)
        if key_id not in keys:
            raise KeyUnavailable(f"no key {key_id} for field {name!r}", key_id=key_id, erased=False)
        opened[name] = open_value(value, keys[key_id], task_id=task_id, field=name)
    return opened


def _parts(sealed: Mapping, field: str) -> tuple[bytes, bytes]:
    if not is_sealed(sealed):
        raise SealingError(f"field {field!r} is not sealed")
    if sealed.get(MARKER) != ALGORITHM:
        raise SealingError(f"field {field!r} is sealed with {sealed.get(MARKER)!r}; only {ALGORITHM} is known")
    if set(sealed) != {MARKER, "kid", "nonce", "ct"} or not isinstance(sealed["kid"], str):
        raise SealingError(f"field {field!r} is not a well-formed sealed value (wants $sealed, kid, nonce, ct)")
    try:
        nonce, ciphertext = _unb64(sealed["nonce"]), _unb64(sealed["ct"])
    except (binascii.Error, TypeError, ValueError):
        raise SealingError(f"field {field!r} has a nonce or ciphertext that is not base64") from None
    if len(nonce) != NONCE_BYTES:
        raise SealingError(f"field {field!r} has a {len(nonce)}-byte nonce, wants {NONCE_BYTES}")
    return nonce, ciphertext


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)
