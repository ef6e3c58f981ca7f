"""Sealing and opening task payloads with the key store: what clients and agents call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.privacy.keystore import KeyStore
from services.privacy.sealing import check_sensitive, key_id_of, open_fields, open_value, seal_fields, sealed_key_ids


async def seal_payload(
    payload: Mapping[str, Any], *, task_id: str, sensitive: Mapping[str, str], keystore: KeyStore
) -> dict:
    """`payload` with each field of `sensitive` (field -> subject id) sealed with its subject's key.

    Seal before publishing: the plaintext and the subject id never reach Kafka.
    """
    check_sensitive(payload, sensitive)
    keys = {field: await keystore.key_for_subject(subject) for field, subject in sensitive.items()}
    return seal_fields(payload, task_id=task_id, keys=keys)


async def open_payload(payload: Mapping[str, Any], *, task_id: str, keystore: KeyStore) -> dict:
    """`payload` with every sealed field opened; KeyUnavailable when a subject was erased."""
    keys = await keystore.keys(sealed_key_ids(payload).values())
    return open_fields(payload, task_id=task_id, keys=keys)


async def open_field(payload: Mapping[str, Any], field: str, *, task_id: str, keystore: KeyStore) -> Any:
    key_id = key_id_of(payload.get(field), field)
    keys = await keystore.keys([key_id])
    return open_value(payload[field], keys[key_id], task_id=task_id, field=field)
