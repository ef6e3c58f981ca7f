"""Readiness probe of the secure broker, used by `infra/stack.sh up --secure`.

Connects with the client settings of the environment (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*,
KAFKA_SSL_CAFILE): an answer proves the TLS handshake, the certificate and the SASL login.
Exit status 0 when the broker answered, 1 otherwise (reason on stderr).
"""

from __future__ import annotations

import asyncio
import sys

from services import kafka
from services.settings import ConfigError, Settings

TIMEOUT_S = 5.0


async def _describe(settings: Settings) -> str:
    admin = kafka.admin_client(settings, request_timeout_ms=int(TIMEOUT_S * 1000))
    await asyncio.wait_for(kafka.start(admin, settings, "the secure broker"), TIMEOUT_S)
    try:
        cluster = await asyncio.wait_for(admin.describe_cluster(), TIMEOUT_S)
    finally:
        await admin.close()
    brokers = ", ".join(f"{b['node_id']}@{b['host']}:{b['port']}" for b in cluster["brokers"])
    return (
        f"brokers [{brokers}], controller {cluster['controller_id']}, cluster id {cluster['cluster_id']}, "
        f"as {settings.kafka_sasl_username} over {settings.kafka_security_protocol}"
    )


def main() -> int:
    try:
        print(asyncio.run(_describe(Settings.from_env())))
    except (ConfigError, Exception) as error:  # noqa: BLE001 - any failure means "not ready"
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
