"""The keys of the agents and of the orchestrator that tests play, one keyring per topic prefix.

In the secure profile (IDENTITY_MODE=verify) what a test publishes for an agent, or in the
router's or balancer's place, counts only when signed with a key enrolled for it: tests enrol one
as the operator would (they run as the admin). With identity off nothing is enrolled or signed.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events.codec import encode
from events.envelope import Envelope
from services.identity.keyring import Keyring
from services.identity.signing import Signer, write_private_key
from services.identity.verify import ORCHESTRATOR
from services.settings import Settings

_KEYRINGS: dict[tuple[str, str, str], Keyring] = {}


def keyring(settings: Settings) -> Keyring:
    which = (settings.kafka_bootstrap_servers, settings.topic_prefix, settings.identity_mode)
    if which not in _KEYRINGS:
        _KEYRINGS[which] = Keyring(settings)
    return _KEYRINGS[which]


def enrolments(settings: Settings) -> int:
    """How many key enrolments this test's keyring wrote to the log (none with identity off): records
    of the `security` topic beside the test's own events, which a replay or the audit also counts."""
    return len(keyring(settings).signers)


async def agent_key(settings: Settings, agent_id: str) -> Signer | None:
    """The enrolled key an SDK agent of this test signs with (None with identity off)."""
    ring = keyring(settings)
    await ring.enroll(agent_id)
    return ring.signer(agent_id)


async def signature(settings: Settings, event: Envelope) -> list[tuple[str, bytes]]:
    """The headers that sign `event` for whom it speaks, its key enrolled first if need be (none with identity off):
    for `kafka.publish`, which adds the type header itself."""
    ring = keyring(settings)
    await ring.enroll(*ring.unknown([event]))
    return ring.signature(event, encode(event))


async def with_orchestrator_key(settings: Settings, directory: Path) -> Settings:
    """`settings` with ORCHESTRATOR_SIGNING_KEY_FILE naming a key enrolled for the orchestrator, when
    identities are verified: the router and the balancer of this test sign their decisions with it."""
    if settings.identity_mode != "verify" or settings.orchestrator_signing_key_file:
        return settings
    signer = Signer.of(Ed25519PrivateKey.generate())
    await keyring(settings).enroll(ORCHESTRATOR, keys={ORCHESTRATOR: signer})
    path = directory / "orchestrator.pem"
    write_private_key(signer.private_key, path)
    return settings.replace(orchestrator_signing_key_file=str(path))
