"""Sensitive task data: fields sealed per data subject, keys outside the event log, erasure, retention."""

from services.privacy.client import open_field, open_payload, seal_payload
from services.privacy.keystore import KeyStore, KeyStoreUnavailable
from services.privacy.sealing import KeyUnavailable, SealingError, is_sealed

__all__ = [
    "KeyStore",
    "KeyStoreUnavailable",
    "KeyUnavailable",
    "SealingError",
    "is_sealed",
    "open_field",
    "open_payload",
    "seal_payload",
]
