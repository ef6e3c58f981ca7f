"""The one place configuration is read from the environment.

Every field names its environment variable; `Settings.from_env()` is called by each
service's bootstrap and by the CLI, nowhere else.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Mapping

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_DATABASE_URL = "postgresql://orchestrator:orchestrator@127.0.0.1:15432/orchestrator"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class ConfigError(ValueError):
    pass


# --- what a value must look like: each rule returns a complaint, or None when the value is fine ---

def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if value != value or value in (float("inf"), float("-inf")) else value


def _count(value: str) -> str | None:
    return None if value.isdigit() else f"must be a non-negative integer, got {value!r}"


def _positive_integer(value: str) -> str | None:
    return None if value.isdigit() and int(value) >= 1 else f"must be a positive integer, got {value!r}"


def _niceness(value: str) -> str | None:
    return None if value.isdigit() and int(value) <= 19 else f"must be an integer from 0 to 19, got {value!r}"


def _integer(value: str) -> str | None:
    return None if re.match(r"^-?[0-9]+$", value) else f"must be an integer, got {value!r}"


def _positive(value: str) -> str | None:
    number = _number(value)
    return None if number is not None and number > 0 else f"must be a positive number, got {value!r}"


def _non_negative(value: str) -> str | None:
    number = _number(value)
    return None if number is not None and number >= 0 else f"must be a non-negative number, got {value!r}"


def _fraction(value: str) -> str | None:
    number = _number(value)
    return None if number is not None and 0 <= number < 1 else f"must be a fraction in [0, 1), got {value!r}"


def _identifier(value: str) -> str | None:
    return None if _IDENTIFIER.match(value) else f"must be a lower-case SQL identifier, got {value!r}"


def _postgres_url(value: str) -> str | None:
    # The value is not repeated: a URL may carry a password.
    return None if value.startswith(("postgresql://", "postgres://")) else "must be a postgresql:// URL"


def _postgres_url_or_empty(value: str) -> str | None:
    return _postgres_url(value) and "must be a postgresql:// URL (or empty for DATABASE_URL)" if value else None


def _host(value: str) -> str | None:
    return None if re.match(r"^[A-Za-z0-9._:-]+$", value) else f"must be a host name or IP address, got {value!r}"


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "is empty"


def _one_of(*choices: str):
    def rule(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"
    return rule


def _env(name: str, default: str, doc: str, rule=None):
    return field(default=default, metadata={"env": name, "doc": doc, "rule": rule})


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = _env(
        "KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP, "Kafka bootstrap servers, host:port[,host:port]", rule=_not_empty)
    kafka_linger_ms: str = _env(
        "KAFKA_LINGER_MS", "0", "How long a client (agent SDK, CLI, benchmark) holds a record to batch it with the "
        "next: 0 sends at once, and records still batch while a request is in flight", rule=_count)
    database_url: str = _env(
        "DATABASE_URL", DEFAULT_DATABASE_URL, "PostgreSQL connection URL for the read models", rule=_postgres_url)
    topic_prefix: str = _env(
        "ORCHESTRATOR_TOPIC_PREFIX", "orchestrator", "Prefix of every topic name: <prefix>.<topic>")
    db_schema: str = _env(
        "ORCHESTRATOR_DB_SCHEMA", "orchestrator", "PostgreSQL schema holding the live read models", rule=_identifier)
    producer_name: str = _env(
        "ORCHESTRATOR_PRODUCER", "cli", "Principal recorded as `producer` on events this process emits")
    replication_factor: str = _env(
        "ORCHESTRATOR_REPLICATION_FACTOR", "1", "Replication factor for topics created by `topics ensure`", rule=_count)
    projector_group_id: str = _env(
        "PROJECTOR_GROUP_ID", "", "Consumer group of the projector (default <prefix>.projector)")
    projector_batch_size: str = _env(
        "PROJECTOR_BATCH_SIZE", "5000", "Most events the projector writes in one transaction", rule=_count)
    projector_batch_timeout_ms: str = _env(
        "PROJECTOR_BATCH_TIMEOUT_MS", "200", "Longest the projector waits to fill a batch", rule=_count)
    metrics_port: str = _env(
        "METRICS_PORT", "0", "Port of the Prometheus /metrics endpoint of a service (0 = off)", rule=_count)
    log_level: str = _env("LOG_LEVEL", "INFO", "Python logging level")
    off_path_nice: str = _env(
        "OFF_PATH_NICE", "10", "Niceness the processors off the routing path (projector, learner, audit, dashboard) "
        "add to their own at start: on a saturated machine they yield the CPU to the router, balancer and health "
        "monitor and catch up later; 0 shares it equally", rule=_niceness)

    # --- health monitor (`orchestrator serve health`) ---
    health_app_id: str = _env(
        "HEALTH_APP_ID", "", "Faust app id of the health monitor: its consumer group and the prefix of its "
        "changelog topics (default <prefix>.health)")
    health_heartbeat_interval_s: str = _env(
        "HEALTH_HEARTBEAT_INTERVAL_S", "5", "Seconds between the heartbeats agents are expected to send",
        rule=_positive)
    health_degraded_after_missed: str = _env(
        "HEALTH_DEGRADED_AFTER_MISSED", "2", "Missed heartbeat intervals after which an agent is degraded",
        rule=_positive_integer)
    health_unhealthy_after_missed: str = _env(
        "HEALTH_UNHEALTHY_AFTER_MISSED", "4",
        "Missed heartbeat intervals after which an agent is unhealthy and its tasks in flight are flagged",
        rule=_positive_integer)
    health_load_window_s: str = _env(
        "HEALTH_LOAD_WINDOW_S", "60", "Seconds of heartbeats summarized in one AgentLoadSummarized", rule=_positive)
    health_tick_interval_s: str = _env(
        "HEALTH_TICK_INTERVAL_S", "1", "Seconds between two checks for silent agents and finished load windows",
        rule=_positive)
    health_data_dir: str = _env(
        "HEALTH_DATA_DIR", ".local/faust", "Directory under which the health monitor's Faust app keeps its data")

    # --- router (`orchestrator serve router`) ---
    router_app_id: str = _env(
        "ROUTER_APP_ID", "", "Faust app id of the router: its consumer group and the prefix of its "
        "changelog topics (default <prefix>.router)")
    router_weight_success: str = _env(
        "ROUTER_WEIGHT_SUCCESS", "1.0", "Weight of predicted success in a candidate's score", rule=_non_negative)
    router_weight_load: str = _env(
        "ROUTER_WEIGHT_LOAD", "0.3", "Weight of current load (in flight / capacity), subtracted", rule=_non_negative)
    router_weight_duration: str = _env(
        "ROUTER_WEIGHT_DURATION", "0.05", "Weight of log(1 + expected duration in seconds), subtracted",
        rule=_non_negative)
    router_weight_cost: str = _env(
        "ROUTER_WEIGHT_COST", "0.05", "Weight of the agent's cost per task, subtracted", rule=_non_negative)
    router_weight_relationship: str = _env(
        "ROUTER_WEIGHT_RELATIONSHIP", "0.1", "Weight of the lift with agents already on the same job",
        rule=_non_negative)
    router_weight_preference: str = _env(
        "ROUTER_WEIGHT_PREFERENCE", "0.2", "Weight of the submitter's preferred agents and tags", rule=_non_negative)
    router_temperature: str = _env(
        "ROUTER_TEMPERATURE", "0.05", "Softmax temperature of the pick among the top candidates (lower exploits more)",
        rule=_positive)
    router_top_k: str = _env(
        "ROUTER_TOP_K", "3", "How many of the best candidates the router may pick from", rule=_positive_integer)
    router_exploration: str = _env(
        "ROUTER_EXPLORATION", "softmax", "How the router explores among its top candidates: softmax (a draw "
        "weighted by score, ROUTER_TEMPERATURE) or thompson (the best score with success drawn from each posterior)",
        rule=_one_of("softmax", "thompson"))
    router_thompson_sharpness: str = _env(
        "ROUTER_THOMPSON_SHARPNESS", "1", "With thompson: draws come from the posterior with its evidence "
        "multiplied by this (above 1 explores less, 1 is plain Thompson sampling)", rule=_positive)
    router_policy: str = _env(
        "ROUTER_POLICY", "orchestrator",
        "Routing policy: orchestrator (learned, explained), or the baselines random, round_robin, least_loaded")
    router_seed: str = _env(
        "ROUTER_SEED", "0", "Seed of the exploration draws; with the task id it makes each draw reproducible",
        rule=_integer)
    router_retry_interval_s: str = _env(
        "ROUTER_RETRY_INTERVAL_S", "0.5", "Seconds between retries of tasks no agent could take, when agents changed",
        rule=_positive)
    router_data_dir: str = _env(
        "ROUTER_DATA_DIR", ".local/faust", "Directory under which the router's Faust app keeps its data")

    # --- balancer (`orchestrator serve balancer`) ---
    balancer_app_id: str = _env(
        "BALANCER_APP_ID", "", "Faust app id of the balancer: its consumer group and the prefix of its "
        "own topics (default <prefix>.balancer)")
    balancer_max_attempts: str = _env(
        "BALANCER_MAX_ATTEMPTS", "3", "Most attempts at one task (reassignments included)", rule=_positive_integer)
    balancer_start_timeout_s: str = _env(
        "BALANCER_START_TIMEOUT_S", "60", "Seconds an agent has to start an assigned task before it is reassigned",
        rule=_positive)
    balancer_completion_timeout_s: str = _env(
        "BALANCER_COMPLETION_TIMEOUT_S", "600", "Seconds an agent has to finish a task it started before it is "
        "reassigned (an agent may hang while it still sends heartbeats)", rule=_positive)
    balancer_top_k: str = _env(
        "BALANCER_TOP_K", "3", "How many of the router's best candidates the balancer may fall back to",
        rule=_positive_integer)
    balancer_tick_interval_s: str = _env(
        "BALANCER_TICK_INTERVAL_S", "1", "Seconds between two checks for start and completion timeouts and deadlines",
        rule=_positive)
    balancer_session_timeout_s: str = _env(
        "BALANCER_SESSION_TIMEOUT_S", "10", "Seconds of silence after which the group hands a stopped balancer's "
        "inbox to another copy (at least the broker's group.min.session.timeout.ms, 6 s by default)", rule=_positive)
    balancer_snapshot_every: str = _env(
        "BALANCER_SNAPSHOT_EVERY", "10000", "Inbox events between two snapshots of the balancer's state",
        rule=_positive_integer)
    balancer_data_dir: str = _env(
        "BALANCER_DATA_DIR", ".local/faust", "Directory under which the balancer's Faust app keeps its data")

    # --- learner (`orchestrator serve learner`) ---
    learner_app_id: str = _env(
        "LEARNER_APP_ID", "", "Faust app id of the learner: its consumer group (default <prefix>.learner)")
    learner_publish_every: str = _env(
        "LEARNER_PUBLISH_EVERY", "100", "Outcomes between two published models (and refreshed estimates of "
        "every agent whose prior others' outcomes moved)", rule=_positive_integer)
    learner_publish_interval_ms: str = _env(
        "LEARNER_PUBLISH_INTERVAL_MS", "200", "Milliseconds of learning gathered into one round of publishing: "
        "an estimate overtaken within it by a newer one of the same agent and capability is not sent",
        rule=_non_negative)
    learner_data_dir: str = _env(
        "LEARNER_DATA_DIR", ".local/faust", "Directory under which the learner's Faust app keeps its data")

    # --- how the Faust processors fetch: latency against CPU per event ---
    faust_fetch_max_wait_ms: str = _env(
        "FAUST_FETCH_MAX_WAIT_MS", "100", "Longest the broker holds a processor's fetch while it waits for data "
        "(FAUST_FETCH_MIN_BYTES of it)", rule=_positive_integer)
    faust_fetch_min_bytes: str = _env(
        "FAUST_FETCH_MIN_BYTES", "1", "Data a processor's fetch waits for, up to FAUST_FETCH_MAX_WAIT_MS: 1 answers "
        "at once; 65536 takes fewer, fuller fetches (less CPU per task) for up to the wait per hop",
        rule=_positive_integer)
    group_session_timeout_s: str = _env(
        "GROUP_SESSION_TIMEOUT_S", "10", "Seconds of silence after which a consumer group hands a stopped processor's "
        "partitions to another copy (at least the broker's group.min.session.timeout.ms, 6 s by default)",
        rule=_positive)
    # --- how the batch readers on the routing path fetch (the balancer's inputs and inbox, the router's tasks) ---
    batch_fetch_max_wait_ms: str = _env(
        "BATCH_FETCH_MAX_WAIT_MS", "5", "Longest the broker holds a batch reader's fetch while less than "
        "BATCH_FETCH_MIN_BYTES has come: at most this much latency per hop when traffic is light",
        rule=_positive_integer)
    batch_fetch_min_bytes: str = _env(
        "BATCH_FETCH_MIN_BYTES", "65536", "Data that ends a batch reader's wait at once; below it, a fetch brings "
        "whatever came within BATCH_FETCH_MAX_WAIT_MS, so fetches stay few however busy the topics are",
        rule=_positive_integer)

    # --- kafka security (client side of the SASL_SSL profile) ---
    kafka_security_protocol: str = _env(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
        "How clients talk to Kafka: PLAINTEXT, or SASL_SSL (the secure profile)",
        rule=_one_of(*KAFKA_SECURITY_PROTOCOLS))
    kafka_sasl_mechanism: str = _env(
        "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "SASL mechanism with SASL_SSL: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN")
    kafka_sasl_username: str = _env(
        "KAFKA_SASL_USERNAME", "", "Kafka principal this process authenticates as (SASL_SSL)")
    kafka_sasl_password: str = _env(
        "KAFKA_SASL_PASSWORD", "", "Password of KAFKA_SASL_USERNAME (or KAFKA_SASL_PASSWORD_FILE)")
    kafka_sasl_password_file: str = _env(
        "KAFKA_SASL_PASSWORD_FILE", "",
        "File holding the password of KAFKA_SASL_USERNAME, instead of KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: str = _env(
        "KAFKA_SSL_CAFILE", "", "PEM file of the CA that signed the brokers' certificates (empty: the system's CAs)")

    # --- agent identity ---
    identity_mode: str = _env(
        "IDENTITY_MODE", "off", "off: records are not checked for signatures (outcomes still only count from "
        "their assignee); verify: every record speaking for an agent must be signed with that agent's enrolled key",
        rule=_one_of("off", "verify"))
    agent_signing_key_file: str = _env(
        "AGENT_SIGNING_KEY_FILE", "", "PEM file of the Ed25519 key an SDK agent signs what it publishes with "
        "(from `orchestrator agent enroll`; empty: unsigned)")

    # --- privacy: encryption and erasure ---
    keystore_database_url: str = _env(
        "KEYSTORE_DATABASE_URL", "", "PostgreSQL URL of the key store of subject keys, for a role of its own "
        "(default DATABASE_URL)", rule=_postgres_url_or_empty)
    keystore_schema: str = _env(
        "KEYSTORE_SCHEMA", "keystore", "Schema of the key store: subject keys and the tombstones of erased keys",
        rule=_identifier)
    keystore_subject_digest_key: str = _env(
        "KEYSTORE_SUBJECT_DIGEST_KEY", "dev-only-subject-digest-key", "Secret under which the key store keeps "
        "subjects as HMAC digests instead of in clear (at least 16 characters; set your own outside development)")
    keystore_scrub_timeout_s: str = _env(
        "KEYSTORE_SCRUB_TIMEOUT_S", "120", "Longest `privacy erase` waits for transactions older than the erasure "
        "to end, so the key table can be rewritten without the destroyed keys", rule=_positive)

    # --- audit ---
    audit_group_id: str = _env(
        "AUDIT_GROUP_ID", "", "Consumer group of the audit projector (default <prefix>.audit)")
    audit_db_schema: str = _env(
        "AUDIT_DB_SCHEMA", "audit", "Schema of the hash-chained audit_log; apart from the read models, which "
        "replay rebuilds", rule=_identifier)
    audit_database_url: str = _env(
        "AUDIT_DATABASE_URL", "", "PostgreSQL URL the audit projector writes with, e.g. as the audit writer role "
        "of `orchestrator db roles` (default DATABASE_URL)", rule=_postgres_url_or_empty)
    audit_batch_size: str = _env(
        "AUDIT_BATCH_SIZE", "5000", "Most records the audit projector appends in one transaction",
        rule=_positive_integer)
    audit_batch_timeout_ms: str = _env(
        "AUDIT_BATCH_TIMEOUT_MS", "200", "Longest the audit projector waits to fill a batch", rule=_positive_integer)
    audit_checkpoint_dir: str = _env(
        "AUDIT_CHECKPOINT_DIR", ".local/audit/checkpoints", "Directory of the signed checkpoints of the audit "
        "chain (keep it outside the database's reach)", rule=_not_empty)
    audit_checkpoint_every_rows: str = _env(
        "AUDIT_CHECKPOINT_EVERY_ROWS", "10000", "Rows appended between two signed checkpoints", rule=_positive_integer)
    audit_checkpoint_every_s: str = _env(
        "AUDIT_CHECKPOINT_EVERY_S", "60", "Longest time between two signed checkpoints while rows arrive",
        rule=_positive)
    audit_signing_key_file: str = _env(
        "AUDIT_SIGNING_KEY_FILE", ".local/audit/signing-key.pem", "Ed25519 key signing the checkpoints, created "
        "on first start with its public key beside it (<file>.pub), which `audit verify` uses", rule=_not_empty)
    db_role_prefix: str = _env(
        "DB_ROLE_PREFIX", "orchestrator", "Prefix of the PostgreSQL roles `orchestrator db roles` creates: "
        "<prefix>_owner, <prefix>_audit_writer, <prefix>_analyst, <prefix>_keystore")
    db_audit_writer_password: str = _env(
        "DB_AUDIT_WRITER_PASSWORD", "", "Login password of the audit writer role (empty: the role cannot log in)")
    db_analyst_password: str = _env(
        "DB_ANALYST_PASSWORD", "", "Login password of the analyst role (empty: the role cannot log in)")
    db_keystore_password: str = _env(
        "DB_KEYSTORE_PASSWORD", "", "Login password of the key store role (empty: the role cannot log in)")

    # --- dashboard (`orchestrator serve dashboard`) ---
    dashboard_host: str = _env(
        "DASHBOARD_HOST", "127.0.0.1", "Address the dashboard listens on (loopback by default: it shows every read "
        "model to whoever reaches it)", rule=_host)
    dashboard_port: str = _env(
        "DASHBOARD_PORT", "8050", "Port of the dashboard", rule=_positive_integer)
    dashboard_database_url: str = _env(
        "DASHBOARD_DATABASE_URL", "", "PostgreSQL URL the dashboard reads with (default: DATABASE_URL, logged in as "
        "<prefix>_analyst when DB_ANALYST_PASSWORD is set); whoever logs in, it reads as <prefix>_analyst",
        rule=_postgres_url_or_empty)
    dashboard_audit_verify_interval_s: str = _env(
        "DASHBOARD_AUDIT_VERIFY_INTERVAL_S", "300", "Seconds between two walks of the audit chain whose verdict the "
        "dashboard's audit page shows", rule=_positive)

    # --- benchmark ---
    bench_results_dir: str = _env(
        "BENCH_RESULTS_DIR", "bench/results", "Where `orchestrator bench` writes its JSON result and readable report",
        rule=_not_empty)
    bench_regression_tolerance: str = _env(
        "BENCH_REGRESSION_TOLERANCE", "0.1", "Fraction by which a figure may be worse than the previous run of the "
        "same kind on the same machine before `orchestrator bench` flags a regression", rule=_fraction)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        environ = os.environ if environ is None else environ
        values = {f.name: environ.get(f.metadata["env"], f.default) for f in fields(cls)}
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        # Each variable's own rule first, then what depends on several of them.
        for f in fields(self):
            if f.metadata["rule"] and (complaint := f.metadata["rule"](getattr(self, f.name))):
                raise ConfigError(f"{f.metadata['env']} {complaint}")
        if not re.match(r"^[A-Za-z0-9._-]+$", self.topic_prefix):
            raise ConfigError("ORCHESTRATOR_TOPIC_PREFIX may hold letters, digits, '.', '_' and '-', "
                              f"got {self.topic_prefix!r}")
        if int(self.health_degraded_after_missed) >= int(self.health_unhealthy_after_missed):
            raise ConfigError("HEALTH_DEGRADED_AFTER_MISSED must be less than HEALTH_UNHEALTHY_AFTER_MISSED")
        from services.router.policies import POLICIES  # late: settings must not depend on services at import
        if self.router_policy not in POLICIES:
            raise ConfigError(f"ROUTER_POLICY must be one of {', '.join(POLICIES)}, got {self.router_policy!r}")
        if self.agent_signing_key_file and not os.path.isfile(self.agent_signing_key_file):
            raise ConfigError(f"AGENT_SIGNING_KEY_FILE names no file: {self.agent_signing_key_file!r}")
        if len(self.keystore_subject_digest_key) < 16:
            raise ConfigError("KEYSTORE_SUBJECT_DIGEST_KEY must have at least 16 characters")
        if self.audit_db_schema == self.db_schema:
            raise ConfigError("AUDIT_DB_SCHEMA must differ from ORCHESTRATOR_DB_SCHEMA: replay swaps the read models")
        if not re.match(r"^[a-z_][a-z0-9_]{0,40}$", self.db_role_prefix):
            raise ConfigError(f"DB_ROLE_PREFIX must be a short lower-case SQL identifier, got {self.db_role_prefix!r}")
        self._validate_kafka_security()

    @property
    def audit_group(self) -> str:
        return self.audit_group_id or f"{self.topic_prefix}.audit"

    @property
    def audit_url(self) -> str:
        return self.audit_database_url or self.database_url

    def _validate_kafka_security(self) -> None:
        if self.kafka_security_protocol == "PLAINTEXT":
            return
        if self.kafka_sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise ConfigError(f"KAFKA_SASL_MECHANISM must be one of {', '.join(KAFKA_SASL_MECHANISMS)}, "
                              f"got {self.kafka_sasl_mechanism!r}")
        if not self.kafka_sasl_username:
            raise ConfigError("KAFKA_SASL_USERNAME is required with KAFKA_SECURITY_PROTOCOL=SASL_SSL")
        if bool(self.kafka_sasl_password) == bool(self.kafka_sasl_password_file):
            raise ConfigError("with KAFKA_SECURITY_PROTOCOL=SASL_SSL set exactly one of KAFKA_SASL_PASSWORD "
                              "and KAFKA_SASL_PASSWORD_FILE")
        if self.kafka_sasl_password_file and not os.access(self.kafka_sasl_password_file, os.R_OK):
            raise ConfigError(f"KAFKA_SASL_PASSWORD_FILE {self.kafka_sasl_password_file!r} is not a readable file")
        if self.kafka_sasl_password_file and not self.kafka_sasl_secret:
            raise ConfigError(f"KAFKA_SASL_PASSWORD_FILE {self.kafka_sasl_password_file!r} is empty")
        if self.kafka_ssl_cafile and not os.access(self.kafka_ssl_cafile, os.R_OK):
            raise ConfigError(f"KAFKA_SSL_CAFILE {self.kafka_ssl_cafile!r} is not a readable file")

    @property
    def kafka_sasl_secret(self) -> str:
        """The SASL password, from the variable or from its file (trailing newline ignored)."""
        if self.kafka_sasl_password_file:
            with open(self.kafka_sasl_password_file, encoding="utf-8") as secret:
                return secret.read().rstrip("\r\n")
        return self.kafka_sasl_password

    @property
    def group_id(self) -> str:
        return self.projector_group_id or f"{self.topic_prefix}.projector"

    @property
    def batch_size(self) -> int:
        return int(self.projector_batch_size)

    @property
    def batch_timeout_ms(self) -> int:
        return int(self.projector_batch_timeout_ms)

    @property
    def health_app(self) -> str:
        return self.health_app_id or f"{self.topic_prefix}.health"

    @property
    def router_app(self) -> str:
        return self.router_app_id or f"{self.topic_prefix}.router"

    @property
    def balancer_app(self) -> str:
        return self.balancer_app_id or f"{self.topic_prefix}.balancer"

    @property
    def learner_app(self) -> str:
        return self.learner_app_id or f"{self.topic_prefix}.learner"

    def topic(self, logical_name: str) -> str:
        return f"{self.topic_prefix}.{logical_name}"


def documented_variables() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for the README and `orchestrator config`."""
    return [(f.metadata["env"], f.default, f.metadata["doc"]) for f in fields(Settings)]
