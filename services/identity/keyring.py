"""Signing keys for the identities one process plays, enrolled as an operator would enrol them.

For whatever speaks for several agents at once, or for the orchestrator, without a real agent
behind each: a simulated fleet, a benchmark, a test. Enrolling writes the `security` topic,
which in the secure profile only the admin may do. With IDENTITY_MODE=off nothing is enrolled
and nothing is signed.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events.codec import encode, type_header
from events.envelope import Envelope, make_event
from events.topics import TOPICS
from services.identity.cli import enrolment
from services.identity.signing import Signer, write_private_key
from services.identity.verify import DECISIONS, ORCHESTRATOR, SPEAKER_FIELD
from services.settings import Settings

ENROLLED_BY = "keyring"


def speaker(event: Envelope) -> str | None:
    """The identity an event speaks for: an agent, the orchestrator (its decisions), or none."""
    if event.event_type in DECISIONS:
        return ORCHESTRATOR
    field = SPEAKER_FIELD.get(event.event_type)
    return getattr(event.body, field) if field else None


class Keyring:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.verifying = settings.identity_mode == "verify"
        self.signers: dict[str, Signer] = {}

    def signer(self, identity: str) -> Signer | None:
        return self.signers.get(identity)

    def unknown(self, events) -> list[str]:
        """The identities the events speak for that have no key here yet, in order, once each."""
        if not self.verifying:
            return []
        wanted = (speaker(event) for event in events)
        return list(dict.fromkeys(i for i in wanted if i is not None and i not in self.signers))

    async def enroll(self, *identities: str, keys: dict[str, Signer] | None = None) -> None:
        """Enrol a new key (or the one given in `keys`) for each identity without one here; every
        enrolment is on the broker when this returns, so what is signed after it counts."""
        missing = [i for i in dict.fromkeys(identities) if i not in self.signers] if self.verifying else []
        if not missing:
            return
        from services import kafka

        await ensure_security_topic(self.settings)
        producer = kafka.producer(self.settings)
        await kafka.start(producer, self.settings)
        try:
            chosen = {i: (keys or {}).get(i) or Signer.of(Ed25519PrivateKey.generate()) for i in missing}
            for identity, signer in chosen.items():
                event = make_event(enrolment(identity, signer, ENROLLED_BY), producer=ENROLLED_BY)
                await producer.send_and_wait(
                    self.settings.topic("security"), encode(event), key=event.key.encode(), headers=[type_header(event)]
                )
            self.signers.update(chosen)
        finally:
            await producer.stop()

    async def orchestrator_env(self, directory: Path) -> dict[str, str]:
        """The environment that has a router and a balancer sign their decisions with a key enrolled
        for the orchestrator, written into `directory`; nothing with identity off. A key of its own,
        not ORCHESTRATOR_SIGNING_KEY_FILE: that one may be enrolled under another topic prefix."""
        if not self.verifying:
            return {}
        path = directory / f"{self.settings.topic_prefix}.orchestrator.pem"
        if ORCHESTRATOR not in self.signers:
            signer = Signer.of(Ed25519PrivateKey.generate())
            await self.enroll(ORCHESTRATOR, keys={ORCHESTRATOR: signer})
            directory.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            write_private_key(signer.private_key, path)
        return {"ORCHESTRATOR_SIGNING_KEY_FILE": str(path)}

    def headers(self, event: Envelope, value: bytes) -> list[tuple[str, bytes]]:
        """The event type header, and a signature when the event speaks for an identity enrolled here."""
        return [type_header(event), *self.signature(event, value)]

    def signature(self, event: Envelope, value: bytes) -> list[tuple[str, bytes]]:
        who = speaker(event) if self.verifying else None
        signer = self.signers.get(who) if who else None
        return signer.headers(value) if signer else []


async def ensure_security_topic(settings: Settings) -> None:
    from aiokafka.admin import NewTopic

    from services import kafka

    spec = next(t for t in TOPICS if t.name == "security")
    await kafka.ensure_own_topics(
        settings,
        [
            NewTopic(
                settings.topic("security"),
                num_partitions=spec.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=kafka.desired_configs(spec),
            )
        ],
    )
