"""The one place configuration is read from the environment.

Every field names its environment variable; `Settings.from_env()` is called by each
service's bootstrap and by the CLI, nowhere else.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Mapping

DEFAULT_BOOTSTRAP = "127.0.0.1:39092"
DEFAULT_DATABASE_URL = "postgresql://orchestrator:orchestrator@127.0.0.1:35432/orchestrator"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ConfigError(ValueError):
    pass


def _env(name: str, default: str, doc: str):
    return field(default=default, metadata={"env": name, "doc": doc})


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = _env(
        "KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP, "Kafka bootstrap servers, host:port[,host:port]")
    database_url: str = _env(
        "DATABASE_URL", DEFAULT_DATABASE_URL, "PostgreSQL connection URL for the read models")
    topic_prefix: str = _env(
        "ORCHESTRATOR_TOPIC_PREFIX", "orchestrator", "Prefix of every topic name: <prefix>.<topic>")
    db_schema: str = _env(
        "ORCHESTRATOR_DB_SCHEMA", "orchestrator", "PostgreSQL schema holding the live read models")
    producer_name: str = _env(
        "ORCHESTRATOR_PRODUCER", "cli", "Principal recorded as `producer` on events this process emits")
    replication_factor: str = _env(
        "ORCHESTRATOR_REPLICATION_FACTOR", "1", "Replication factor for topics created by `topics ensure`")
    projector_group_id: str = _env(
        "PROJECTOR_GROUP_ID", "", "Consumer group of the projector (default <prefix>.projector)")
    projector_batch_size: str = _env(
        "PROJECTOR_BATCH_SIZE", "5000", "Most events the projector writes in one transaction")
    projector_batch_timeout_ms: str = _env(
        "PROJECTOR_BATCH_TIMEOUT_MS", "200", "Longest the projector waits to fill a batch")
    metrics_port: str = _env(
        "METRICS_PORT", "0", "Port of the Prometheus /metrics endpoint of a service (0 = off)")
    log_level: str = _env("LOG_LEVEL", "INFO", "Python logging level")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        environ = os.environ if environ is None else environ
        values = {f.name: environ.get(f.metadata["env"], f.default) for f in fields(cls)}
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in ("projector_batch_size", "projector_batch_timeout_ms", "metrics_port",
                     "replication_factor"):
            value = getattr(self, name)
            if not value.isdigit():
                raise ConfigError(f"{_env_name(name)} must be a non-negative integer, got {value!r}")
        if not _IDENTIFIER.match(self.db_schema):
            raise ConfigError(f"ORCHESTRATOR_DB_SCHEMA must be a lower-case SQL identifier, got {self.db_schema!r}")
        if not re.match(r"^[A-Za-z0-9._-]+$", self.topic_prefix):
            raise ConfigError(f"ORCHESTRATOR_TOPIC_PREFIX may hold letters, digits, '.', '_' and '-', got {self.topic_prefix!r}")
        if not self.kafka_bootstrap_servers.strip():
            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is empty")
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("DATABASE_URL must be a postgresql:// URL")

    @property
    def group_id(self) -> str:
        return self.projector_group_id or f"{self.topic_prefix}.projector"

    @property
    def batch_size(self) -> int:
        return int(self.projector_batch_size)

    @property
    def batch_timeout_ms(self) -> int:
        return int(self.projector_batch_timeout_ms)

    def topic(self, logical_name: str) -> str:
        return f"{self.topic_prefix}.{logical_name}"


def _env_name(field_name: str) -> str:
    return next(f.metadata["env"] for f in fields(Settings) if f.name == field_name)


def documented_variables() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for the README and `orchestrator config`."""
    return [(f.metadata["env"], f.default, f.metadata["doc"]) for f in fields(Settings)]
