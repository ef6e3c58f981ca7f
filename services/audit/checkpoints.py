"""Signed checkpoints of the audit chain, kept outside the database.

Whoever can write the database can rewrite the whole chain consistently, or cut off its
tail; a checkpoint signed with a key the database never sees pins the chain's hash at a
seq, so either shows up against the newest checkpoint.
"""

from __future__ import annotations

import base64
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.chain import ChainCheck, Problem


@dataclass(frozen=True)
class Checkpoint:
    chain: str  # the audit schema: one chain per schema
    last_seq: int
    last_hash: str  # hex
    count: int  # rows in the chain up to and including last_seq
    time: str  # ISO 8601, UTC
    last_position: str  # topic[partition]@offset of the row at last_seq
    signature: str = ""  # base64 Ed25519 over payload()

    def payload(self) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if k != "signature"}
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> Checkpoint:
    signature = base64.b64encode(key.sign(checkpoint.payload())).decode()
    return Checkpoint(**{**asdict(checkpoint), "signature": signature})


def signature_valid(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.payload())
    except (InvalidSignature, ValueError):
        return False
    return True


def check_against(
    chain: ChainCheck, checkpoints: list[tuple[str, Checkpoint | None]], public_key: Ed25519PublicKey
) -> list[Problem]:
    """Problems of the checkpoints themselves and of the chain measured against them.

    `checkpoints` are (file name, parsed checkpoint or None when unreadable). Only checkpoints
    whose signature verifies are trusted to judge the chain.
    """
    problems, trusted = [], []
    for name, checkpoint in checkpoints:
        if checkpoint is None or not signature_valid(checkpoint, public_key):
            seq = checkpoint.last_seq if checkpoint else 0
            problems.append(Problem(seq, "checkpoint_forged", f"{name}: signature does not verify"))
        else:
            trusted.append(checkpoint)
    if chain.problem:
        return problems  # the chain is already broken before any checkpoint can judge it further
    for checkpoint in sorted(trusted, key=lambda c: c.last_seq):
        if chain.head.seq < checkpoint.last_seq:
            problems.append(
                Problem(
                    chain.head.seq + 1,
                    "truncated",
                    f"a signed checkpoint of {checkpoint.time} covers {checkpoint.count} rows up to seq "
                    f"{checkpoint.last_seq} ({checkpoint.last_position}); the log ends at seq {chain.head.seq}",
                )
            )
            break
        if (chain.hash_at(checkpoint.last_seq) or b"").hex() != checkpoint.last_hash:
            problems.append(
                Problem(
                    checkpoint.last_seq,
                    "checkpoint_mismatch",
                    f"the chain up to here was rewritten: its hash differs from the checkpoint of {checkpoint.time}",
                    checkpoint.last_position,
                )
            )
            break
    return sorted(problems, key=lambda p: p.seq)


# --- files --------------------------------------------------------------------------------


def file_name(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.chain}-{checkpoint.last_seq:015d}.json"


def write(directory: Path, checkpoint: Checkpoint) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file_name(checkpoint)
    partial = target.with_suffix(".partial")
    partial.write_bytes(orjson.dumps(asdict(checkpoint), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    os.replace(partial, target)  # a reader never sees half a checkpoint
    return target


def read_all(directory: Path, chain: str) -> list[tuple[str, Checkpoint | None]]:
    found = []
    for path in sorted(directory.glob(f"{chain}-*.json")):
        try:
            checkpoint = Checkpoint(**orjson.loads(path.read_bytes()))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            checkpoint = None
        if checkpoint is not None and checkpoint.chain != chain:
            checkpoint = None  # a file renamed from another chain is not this chain's checkpoint
        found.append((path.name, checkpoint))
    return found


def public_key_path(signing_key_file: Path) -> Path:
    return signing_key_file.with_name(signing_key_file.name + ".pub")


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The signing key; on first start a new one, with its public key beside it."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    public_key_path(path).write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key


def load_public_key(signing_key_file: Path) -> Ed25519PublicKey:
    path = public_key_path(signing_key_file)
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key
