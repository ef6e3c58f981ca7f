"""How an agent signs what it publishes, in terms any Ed25519 library can reproduce.

The signature covers the exact Kafka value bytes and the key id, so neither the event nor
the key it claims can be swapped after signing:

    message   = b"orchestrator-signature-v1\\x00" + key_id (UTF-8) + b"\\x00" + value
    signature = Ed25519(private key, message)
    headers   = orchestrator.key-id: key_id,  orchestrator.signature: base64url(signature), no padding

Keys travel as text: a public key is its 32 raw bytes in base64url without padding, and a
key id is derived from it, so whoever holds the key can name it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.settings import ConfigError, Settings

SIGNATURE_HEADER = "orchestrator.signature"
KEY_ID_HEADER = "orchestrator.key-id"
DOMAIN = b"orchestrator-signature-v1\x00"


class SigningKeyError(ValueError):
    """A key file that cannot be used to sign."""


def signed_message(key_id: str, value: bytes) -> bytes:
    return DOMAIN + key_id.encode() + b"\x00" + value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_key: bytes) -> str:
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:24]


@dataclass(frozen=True)
class Signer:
    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def of(cls, private_key: Ed25519PrivateKey) -> "Signer":
        return cls(key_id_of(raw_public_key(private_key.public_key())), private_key)

    @property
    def public_key(self) -> bytes:
        return raw_public_key(self.private_key.public_key())

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        signature = self.private_key.sign(signed_message(self.key_id, value))
        return [(KEY_ID_HEADER, self.key_id.encode()), (SIGNATURE_HEADER, b64(signature).encode())]


def write_private_key(private_key: Ed25519PrivateKey, path: Path) -> None:
    """PEM (PKCS#8), readable by its owner only; never overwrites an existing file."""
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


def load_signer(path: str | Path) -> Signer:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise SigningKeyError(f"cannot read the signing key {path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return Signer.of(key)


def decision_signer(settings: Settings) -> Signer | None:
    """The key the router and the balancer sign their decisions with: with IDENTITY_MODE=verify a
    decision without it does not count, so they do not start without it."""
    if settings.orchestrator_signing_key_file:
        return load_signer(settings.orchestrator_signing_key_file)
    if settings.identity_mode == "verify":
        raise ConfigError(
            "IDENTITY_MODE=verify: ORCHESTRATOR_SIGNING_KEY_FILE must name the key enrolled for the orchestrator "
            "(`orchestrator agent enroll orchestrator --out FILE`); unsigned decisions are refused"
        )
    return None
