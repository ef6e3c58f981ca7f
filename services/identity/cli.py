"""Commands of the agent identity area: `agent enroll` and `agent revoke`.

Enrolment is an operator act: in the secure profile only the admin principal may write the
`security` topic these commands publish to.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from events.envelope import EventBody, make_event
from events.security import AgentKeyEnrolled, AgentKeyRevoked
from services.identity.signing import Signer, b64, write_private_key
from services.settings import Settings


class IdentityCommandError(ValueError):
    pass


def add_commands(commands) -> None:
    agent = commands.add_parser("agent", help="agent signing keys: enrol and revoke").add_subparsers(metavar="ACTION")
    enroll = agent.add_parser(
        "enroll",
        help="generate an agent's Ed25519 key pair, write the private key for the "
        "agent and publish the public key to the security topic",
    )
    enroll.add_argument("agent_id", metavar="AGENT_ID")
    enroll.add_argument(
        "--out", required=True, metavar="KEYFILE", help="where the private key goes (PEM, mode 0600; never overwritten)"
    )
    enroll.add_argument("--by", help="operator recorded as enrolled_by (default ORCHESTRATOR_PRODUCER)")
    enroll.set_defaults(run=_clear_errors(cmd_agent_enroll))
    revoke = agent.add_parser("revoke", help="revoke an agent's key: what is signed with it from now on is rejected")
    revoke.add_argument("agent_id", metavar="AGENT_ID")
    revoke.add_argument("--key-id", required=True, help="the key id `agent enroll` printed")
    revoke.add_argument("--reason", default="", help="why, for the record")
    revoke.add_argument("--by", help="operator recorded as revoked_by (default ORCHESTRATOR_PRODUCER)")
    revoke.set_defaults(run=_clear_errors(cmd_agent_revoke))


def enrolment(agent_id: str, signer: Signer, enrolled_by: str) -> AgentKeyEnrolled:
    return AgentKeyEnrolled(
        agent_id=agent_id, key_id=signer.key_id, public_key=b64(signer.public_key), enrolled_by=enrolled_by
    )


def cmd_agent_enroll(args, settings: Settings) -> int:
    out = Path(args.out)
    if out.exists():
        raise IdentityCommandError(f"{out} exists; a key file is never overwritten")
    signer = Signer.of(Ed25519PrivateKey.generate())
    body = _validated(lambda: enrolment(args.agent_id, signer, args.by or settings.producer_name))
    # Published first: a key file that exists is a key that was enrolled.
    _publish(settings, body, args.by)
    write_private_key(signer.private_key, out)
    print(
        f"enrolled {signer.key_id} for {args.agent_id}; private key in {out} (give it to the agent as "
        "AGENT_SIGNING_KEY_FILE)"
    )
    return 0


def cmd_agent_revoke(args, settings: Settings) -> int:
    body = _validated(
        lambda: AgentKeyRevoked(
            agent_id=args.agent_id,
            key_id=args.key_id,
            revoked_at=datetime.now(timezone.utc),
            reason=args.reason,
            revoked_by=args.by or settings.producer_name,
        )
    )
    _publish(settings, body, args.by)
    print(f"revoked {args.key_id} of {args.agent_id}")
    return 0


def _validated(build):
    try:
        return build()
    except ValidationError as error:
        raise IdentityCommandError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False))
        ) from None


def _clear_errors(command):
    @functools.wraps(command)
    def run(args, settings: Settings) -> int:
        try:
            return command(args, settings)
        except IdentityCommandError as error:
            print(f"orchestrator: {error}", file=sys.stderr)
            return 2

    return run


def _publish(settings: Settings, body: EventBody, by: str | None) -> None:
    from services import kafka

    async def send():
        # An operator may enrol the first agent before any processor has created the topics.
        await kafka.ensure_topics(settings)
        producer = kafka.producer(settings)
        await kafka.start(producer, settings)
        try:
            await kafka.publish(producer, settings, make_event(body, producer=by or settings.producer_name))
        finally:
            await producer.stop()

    asyncio.run(send())
