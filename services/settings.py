"""The one place configuration is read from the environment.

Every field names its environment variable; `Settings.from_env()` is called by each
service's bootstrap and by the CLI, nowhere else.
"""

from __future__ import annotations

import os
import re
from dataclasses import Field, dataclass, field, fields, replace
from typing import Mapping

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_DATABASE_URL = "postgresql://orchestrator:orchestrator@127.0.0.1:15432/orchestrator"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class ConfigError(ValueError):
    pass


# --- how a variable's text becomes its value: each parser returns the typed value, or raises
# Invalid with a complaint. A value that already has its type (an override, `replace()`) is
# checked by the same rule. ---


class Invalid(ValueError):
    pass


def _as_int(value, *, least: int | None = None, most: int | None = None, what: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.match(r"^-?[0-9]+$", text):
        raise Invalid(f"must be {what}, got {value!r}")
    number = int(text)
    if (least is not None and number < least) or (most is not None and number > most):
        raise Invalid(f"must be {what}, got {value!r}")
    return number


def _as_float(value, *, check, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"must be {what}, got {value!r}") from None
    if isinstance(value, bool) or number != number or number in (float("inf"), float("-inf")) or not check(number):
        raise Invalid(f"must be {what}, got {value!r}")
    return number


def _count(value) -> int:
    return _as_int(value, least=0, what="a non-negative integer")


def _positive_integer(value) -> int:
    return _as_int(value, least=1, what="a positive integer")


def _niceness(value) -> int:
    return _as_int(value, least=0, most=19, what="an integer from 0 to 19")


def _integer(value) -> int:
    return _as_int(value, what="an integer")


def _positive(value) -> float:
    return _as_float(value, check=lambda n: n > 0, what="a positive number")


def _non_negative(value) -> float:
    return _as_float(value, check=lambda n: n >= 0, what="a non-negative number")


def _fraction(value) -> float:
    return _as_float(value, check=lambda n: 0 <= n < 1, what="a fraction in [0, 1)")


def _text(value) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be text, got {value!r}")
    return value


def _identifier(value) -> str:
    if not _IDENTIFIER.match(_text(value)):
        raise Invalid(f"must be a lower-case SQL identifier, got {value!r}")
    return value


def _postgres_url(value) -> str:
    # The value is not repeated: a URL may carry a password.
    if not _text(value).startswith(("postgresql://", "postgres://")):
        raise Invalid("must be a postgresql:// URL")
    return value


def _postgres_url_or_empty(value) -> str:
    if value and not _text(value).startswith(("postgresql://", "postgres://")):
        raise Invalid("must be a postgresql:// URL (or empty for DATABASE_URL)")
    return value


def _not_empty(value) -> str:
    if not _text(value).strip():
        raise Invalid("is empty")
    return value


def _host(value) -> str:
    if not re.match(r"^[A-Za-z0-9._:-]+$", _text(value)):
        raise Invalid(f"must be a host name or IP address, got {value!r}")
    return value


def _one_of(*choices: str):
    def parse(value) -> str:
        if value not in choices:
            raise Invalid(f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def _env(name: str, default: str, doc: str, rule=_text):
    """A setting: its variable, its default as written in the environment, its meaning, and its parser."""
    return field(default=rule(default), metadata={"env": name, "default": default, "doc": doc, "rule": rule})


@dataclass(frozen=True)
class _Section:
    """Variables read together: each field parsed into its type by its rule, as it is set."""

    def __post_init__(self) -> None:
        # Text from the environment and a value given as an override go through the same rule:
        # what the fields hold afterwards has the field's type.
        for f in fields(self):
            if "env" not in f.metadata:
                continue
            try:
                object.__setattr__(self, f.name, f.metadata["rule"](getattr(self, f.name)))
            except Invalid as complaint:
                raise ConfigError(f"{f.metadata['env']} {complaint}") from None

    @classmethod
    def read(cls, environ: Mapping[str, str], overrides: dict):
        return cls(
            **{
                f.name: overrides.pop(f.name, environ.get(f.metadata["env"], f.metadata["default"]))
                for f in fields(cls)
                if "env" in f.metadata
            }
        )


@dataclass(frozen=True)
class HealthSettings(_Section):
    """The health monitor (`orchestrator serve health`)."""

    app_id: str = _env(
        "HEALTH_APP_ID",
        "",
        "Faust app id of the health monitor: its consumer group and the prefix of its "
        "changelog topics (default <prefix>.health)",
    )
    heartbeat_interval_s: float = _env(
        "HEALTH_HEARTBEAT_INTERVAL_S", "5", "Seconds between the heartbeats agents are expected to send", rule=_positive
    )
    degraded_after_missed: int = _env(
        "HEALTH_DEGRADED_AFTER_MISSED",
        "2",
        "Missed heartbeat intervals after which an agent is degraded",
        rule=_positive_integer,
    )
    unhealthy_after_missed: int = _env(
        "HEALTH_UNHEALTHY_AFTER_MISSED",
        "4",
        "Missed heartbeat intervals after which an agent is unhealthy and its tasks in flight are flagged",
        rule=_positive_integer,
    )
    load_window_s: float = _env(
        "HEALTH_LOAD_WINDOW_S", "60", "Seconds of heartbeats summarized in one AgentLoadSummarized", rule=_positive
    )
    tick_interval_s: float = _env(
        "HEALTH_TICK_INTERVAL_S",
        "1",
        "Seconds between two checks for silent agents and finished load windows",
        rule=_positive,
    )
    data_dir: str = _env(
        "HEALTH_DATA_DIR", ".local/faust", "Directory under which the health monitor's Faust app keeps its data"
    )


@dataclass(frozen=True)
class RouterSettings(_Section):
    """The router (`orchestrator serve router`)."""

    app_id: str = _env(
        "ROUTER_APP_ID",
        "",
        "Faust app id of the router: its consumer group and the prefix of its "
        "changelog topics (default <prefix>.router)",
    )
    weight_success: float = _env(
        "ROUTER_WEIGHT_SUCCESS", "1.0", "Weight of predicted success in a candidate's score", rule=_non_negative
    )
    weight_load: float = _env(
        "ROUTER_WEIGHT_LOAD", "0.3", "Weight of current load (in flight / capacity), subtracted", rule=_non_negative
    )
    weight_duration: float = _env(
        "ROUTER_WEIGHT_DURATION",
        "0.05",
        "Weight of log(1 + expected duration in seconds), subtracted",
        rule=_non_negative,
    )
    weight_cost: float = _env(
        "ROUTER_WEIGHT_COST", "0.05", "Weight of the agent's cost per task, subtracted", rule=_non_negative
    )
    weight_relationship: float = _env(
        "ROUTER_WEIGHT_RELATIONSHIP",
        "0.1",
        "Weight of the lift with agents already on the same job",
        rule=_non_negative,
    )
    weight_preference: float = _env(
        "ROUTER_WEIGHT_PREFERENCE", "0.2", "Weight of the submitter's preferred agents and tags", rule=_non_negative
    )
    temperature: float = _env(
        "ROUTER_TEMPERATURE",
        "0.05",
        "Softmax temperature of the pick among the top candidates (lower exploits more)",
        rule=_positive,
    )
    top_k: int = _env(
        "ROUTER_TOP_K", "3", "How many of the best candidates the router may pick from", rule=_positive_integer
    )
    exploration: str = _env(
        "ROUTER_EXPLORATION",
        "softmax",
        "How the router explores among its top candidates: softmax (a draw "
        "weighted by score, ROUTER_TEMPERATURE) or thompson (the best score with success drawn from each posterior)",
        rule=_one_of("softmax", "thompson"),
    )
    thompson_sharpness: float = _env(
        "ROUTER_THOMPSON_SHARPNESS",
        "1",
        "With thompson: draws come from the posterior with its evidence "
        "multiplied by this (above 1 explores less, 1 is plain Thompson sampling)",
        rule=_positive,
    )
    policy: str = _env(
        "ROUTER_POLICY",
        "orchestrator",
        "Routing policy: orchestrator (learned, explained), or the baselines random, round_robin, least_loaded",
    )
    seed: int = _env(
        "ROUTER_SEED",
        "0",
        "Seed of the exploration draws; with the task id it makes each draw reproducible",
        rule=_integer,
    )
    view_fetch_max_wait_ms: int = _env(
        "ROUTER_VIEW_FETCH_MAX_WAIT_MS",
        "50",
        "Longest the router's view of loads and outcomes (assignments, outcomes, agents, models) waits "
        "for a fuller fetch; submissions are read apart, at the first record (PROMPT_FETCH_MAX_WAIT_MS)",
        rule=_positive_integer,
    )
    retry_interval_s: float = _env(
        "ROUTER_RETRY_INTERVAL_S",
        "0.5",
        "Seconds between retries of tasks no agent could take, when agents changed",
        rule=_positive,
    )
    data_dir: str = _env(
        "ROUTER_DATA_DIR", ".local/faust", "Directory under which the router's Faust app keeps its data"
    )


@dataclass(frozen=True)
class BalancerSettings(_Section):
    """The balancer (`orchestrator serve balancer`)."""

    app_id: str = _env(
        "BALANCER_APP_ID",
        "",
        "Faust app id of the balancer: its consumer group and the prefix of its own topics (default <prefix>.balancer)",
    )
    max_attempts: int = _env(
        "BALANCER_MAX_ATTEMPTS", "3", "Most attempts at one task (reassignments included)", rule=_positive_integer
    )
    start_timeout_s: float = _env(
        "BALANCER_START_TIMEOUT_S",
        "60",
        "Seconds an agent has to start an assigned task before it is reassigned",
        rule=_positive,
    )
    completion_timeout_s: float = _env(
        "BALANCER_COMPLETION_TIMEOUT_S",
        "600",
        "Seconds an agent has to finish a task it started before it is "
        "reassigned (an agent may hang while it still sends heartbeats)",
        rule=_positive,
    )
    top_k: int = _env(
        "BALANCER_TOP_K",
        "3",
        "How many of the router's best candidates the balancer may fall back to",
        rule=_positive_integer,
    )
    tick_interval_s: float = _env(
        "BALANCER_TICK_INTERVAL_S",
        "1",
        "Seconds between two checks for start and completion timeouts and deadlines",
        rule=_positive,
    )
    session_timeout_s: float = _env(
        "BALANCER_SESSION_TIMEOUT_S",
        "10",
        "Seconds of silence after which the group hands a stopped balancer's "
        "inbox to another copy (at least the broker's group.min.session.timeout.ms, 6 s by default)",
        rule=_positive,
    )
    snapshot_every: int = _env(
        "BALANCER_SNAPSHOT_EVERY",
        "10000",
        "Inbox events between two snapshots of the balancer's state",
        rule=_positive_integer,
    )
    data_dir: str = _env(
        "BALANCER_DATA_DIR", ".local/faust", "Directory under which the balancer's Faust app keeps its data"
    )


@dataclass(frozen=True)
class LearnerSettings(_Section):
    """The learner (`orchestrator serve learner`)."""

    app_id: str = _env(
        "LEARNER_APP_ID", "", "Faust app id of the learner: its consumer group (default <prefix>.learner)"
    )
    publish_every: int = _env(
        "LEARNER_PUBLISH_EVERY",
        "100",
        "Outcomes between two published models (and refreshed estimates of "
        "every agent whose prior others' outcomes moved)",
        rule=_positive_integer,
    )
    publish_interval_ms: float = _env(
        "LEARNER_PUBLISH_INTERVAL_MS",
        "200",
        "Milliseconds of learning gathered into one round of publishing: "
        "an estimate overtaken within it by a newer one of the same agent and capability is not sent",
        rule=_non_negative,
    )
    data_dir: str = _env(
        "LEARNER_DATA_DIR", ".local/faust", "Directory under which the learner's Faust app keeps its data"
    )


@dataclass(frozen=True)
class ProjectorSettings(_Section):
    """The projector (`orchestrator serve projector`) and replay."""

    group_id: str = _env("PROJECTOR_GROUP_ID", "", "Consumer group of the projector (default <prefix>.projector)")
    batch_size: int = _env(
        "PROJECTOR_BATCH_SIZE", "5000", "Most events the projector writes in one transaction", rule=_count
    )
    batch_timeout_ms: int = _env(
        "PROJECTOR_BATCH_TIMEOUT_MS", "200", "Longest the projector waits to fill a batch", rule=_count
    )


@dataclass(frozen=True)
class AuditSettings(_Section):
    """The audit projector (`orchestrator serve audit`) and `audit verify`."""

    group_id: str = _env("AUDIT_GROUP_ID", "", "Consumer group of the audit projector (default <prefix>.audit)")
    db_schema: str = _env(
        "AUDIT_DB_SCHEMA",
        "audit",
        "Schema of the hash-chained audit_log; apart from the read models, which replay rebuilds",
        rule=_identifier,
    )
    database_url: str = _env(
        "AUDIT_DATABASE_URL",
        "",
        "PostgreSQL URL the audit projector writes with, e.g. as the audit writer role "
        "of `orchestrator db roles` (default DATABASE_URL)",
        rule=_postgres_url_or_empty,
    )
    batch_size: int = _env(
        "AUDIT_BATCH_SIZE",
        "5000",
        "Most records the audit projector appends in one transaction",
        rule=_positive_integer,
    )
    batch_timeout_ms: int = _env(
        "AUDIT_BATCH_TIMEOUT_MS", "200", "Longest the audit projector waits to fill a batch", rule=_positive_integer
    )
    checkpoint_dir: str = _env(
        "AUDIT_CHECKPOINT_DIR",
        ".local/audit/checkpoints",
        "Directory of the signed checkpoints of the audit chain (keep it outside the database's reach)",
        rule=_not_empty,
    )
    checkpoint_every_rows: int = _env(
        "AUDIT_CHECKPOINT_EVERY_ROWS", "10000", "Rows appended between two signed checkpoints", rule=_positive_integer
    )
    checkpoint_every_s: float = _env(
        "AUDIT_CHECKPOINT_EVERY_S",
        "60",
        "Longest time between two signed checkpoints while rows arrive",
        rule=_positive,
    )
    signing_key_file: str = _env(
        "AUDIT_SIGNING_KEY_FILE",
        ".local/audit/signing-key.pem",
        "Ed25519 key signing the checkpoints, created "
        "on first start with its public key beside it (<file>.pub), which `audit verify` uses",
        rule=_not_empty,
    )


@dataclass(frozen=True)
class KeystoreSettings(_Section):
    """The key store of sealed payloads: encryption and erasure."""

    database_url: str = _env(
        "KEYSTORE_DATABASE_URL",
        "",
        "PostgreSQL URL of the key store of subject keys, for a role of its own (default DATABASE_URL)",
        rule=_postgres_url_or_empty,
    )
    schema: str = _env(
        "KEYSTORE_SCHEMA",
        "keystore",
        "Schema of the key store: subject keys and the tombstones of erased keys",
        rule=_identifier,
    )
    subject_digest_key: str = _env(
        "KEYSTORE_SUBJECT_DIGEST_KEY",
        "dev-only-subject-digest-key",
        "Secret under which the key store keeps "
        "subjects as HMAC digests instead of in clear (at least 16 characters; set your own outside development)",
    )
    scrub_timeout_s: float = _env(
        "KEYSTORE_SCRUB_TIMEOUT_S",
        "120",
        "Longest `privacy erase` waits for transactions older than the erasure "
        "to end, so the key table can be rewritten without the destroyed keys",
        rule=_positive,
    )


@dataclass(frozen=True)
class BenchSettings(_Section):
    """`orchestrator bench`."""

    results_dir: str = _env(
        "BENCH_RESULTS_DIR",
        "bench/results",
        "Where `orchestrator bench` writes its JSON result and readable report",
        rule=_not_empty,
    )
    regression_tolerance: float = _env(
        "BENCH_REGRESSION_TOLERANCE",
        "0.1",
        "Fraction by which a figure may be worse than the previous run of the "
        "same kind on the same machine before `orchestrator bench` flags a regression",
        rule=_fraction,
    )


@dataclass(frozen=True)
class DashboardSettings(_Section):
    """The dashboard (`orchestrator serve dashboard`)."""

    host: str = _env(
        "DASHBOARD_HOST",
        "127.0.0.1",
        "Address the dashboard listens on (loopback by default: it shows every read model to whoever reaches it)",
        rule=_host,
    )
    port: int = _env("DASHBOARD_PORT", "8050", "Port of the dashboard", rule=_positive_integer)
    database_url: str = _env(
        "DASHBOARD_DATABASE_URL",
        "",
        "PostgreSQL URL the dashboard reads with (default: DATABASE_URL, logged in as "
        "<prefix>_analyst when DB_ANALYST_PASSWORD is set); whoever logs in, it reads as <prefix>_analyst",
        rule=_postgres_url_or_empty,
    )
    audit_verify_interval_s: float = _env(
        "DASHBOARD_AUDIT_VERIFY_INTERVAL_S",
        "300",
        "Seconds between two walks of the audit chain whose verdict the dashboard's audit page shows",
        rule=_positive,
    )


@dataclass(frozen=True)
class Settings(_Section):
    """What every process shares (Kafka, PostgreSQL, topic names, metrics, identity), and one
    section per processor: `settings.router.seed`, `settings.health.data_dir`, ..."""

    kafka_bootstrap_servers: str = _env(
        "KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP, "Kafka bootstrap servers, host:port[,host:port]", rule=_not_empty
    )
    kafka_linger_ms: int = _env(
        "KAFKA_LINGER_MS",
        "0",
        "How long a client (agent SDK, CLI, benchmark) holds a record to batch it with the "
        "next: 0 sends at once, and records still batch while a request is in flight",
        rule=_count,
    )
    database_url: str = _env(
        "DATABASE_URL", DEFAULT_DATABASE_URL, "PostgreSQL connection URL for the read models", rule=_postgres_url
    )
    topic_prefix: str = _env(
        "ORCHESTRATOR_TOPIC_PREFIX", "orchestrator", "Prefix of every topic name: <prefix>.<topic>"
    )
    db_schema: str = _env(
        "ORCHESTRATOR_DB_SCHEMA", "orchestrator", "PostgreSQL schema holding the live read models", rule=_identifier
    )
    producer_name: str = _env(
        "ORCHESTRATOR_PRODUCER", "cli", "Principal recorded as `producer` on events this process emits"
    )
    replication_factor: int = _env(
        "ORCHESTRATOR_REPLICATION_FACTOR", "1", "Replication factor for topics created by `topics ensure`", rule=_count
    )
    metrics_port: int = _env(
        "METRICS_PORT", "0", "Port of the Prometheus /metrics endpoint of a service (0 = off)", rule=_count
    )
    log_level: str = _env("LOG_LEVEL", "INFO", "Python logging level")
    off_path_nice: int = _env(
        "OFF_PATH_NICE",
        "10",
        "Niceness the processors off the routing path (projector, learner, audit, dashboard) "
        "add to their own at start: on a saturated machine they yield the CPU to the router, balancer and health "
        "monitor and catch up later; 0 shares it equally",
        rule=_niceness,
    )
    faust_fetch_max_wait_ms: int = _env(
        "FAUST_FETCH_MAX_WAIT_MS",
        "100",
        "Longest the broker holds a processor's fetch while it waits for data (FAUST_FETCH_MIN_BYTES of it)",
        rule=_positive_integer,
    )
    faust_fetch_min_bytes: int = _env(
        "FAUST_FETCH_MIN_BYTES",
        "1",
        "Data a processor's fetch waits for, up to FAUST_FETCH_MAX_WAIT_MS: 1 answers "
        "at once; 65536 takes fewer, fuller fetches (less CPU per task) for up to the wait per hop",
        rule=_positive_integer,
    )
    group_session_timeout_s: float = _env(
        "GROUP_SESSION_TIMEOUT_S",
        "10",
        "Seconds of silence after which a consumer group hands a stopped processor's "
        "partitions to another copy (at least the broker's group.min.session.timeout.ms, 6 s by default)",
        rule=_positive,
    )
    startup_wait_s: float = _env(
        "STARTUP_WAIT_S",
        "30",
        "Seconds the projector and the audit projector keep trying, when they start, to reach a database "
        "or broker that is away (started again during an outage) before they stop with the error; 0 stops at once",
        rule=_non_negative,
    )
    batch_fetch_max_wait_ms: int = _env(
        "BATCH_FETCH_MAX_WAIT_MS",
        "5",
        "Longest the broker holds a batch reader's fetch while less than "
        "BATCH_FETCH_MIN_BYTES has come: at most this much latency per hop when traffic is light",
        rule=_positive_integer,
    )
    prompt_fetch_max_wait_ms: int = _env(
        "PROMPT_FETCH_MAX_WAIT_MS",
        "100",
        "Longest the broker holds a fetch of the router's submissions or the balancer's inbox while nothing "
        "has come; such a fetch is answered at the first record, since what feeds them already comes in batches",
        rule=_positive_integer,
    )
    batch_commit_interval_ms: int = _env(
        "BATCH_COMMIT_INTERVAL_MS",
        "100",
        "How often a batch reader commits the offsets of the batches whose effects are on the broker: "
        "0 commits every batch; after a crash, at most this much work is read and passed over again",
        rule=_count,
    )
    batch_fetch_min_bytes: int = _env(
        "BATCH_FETCH_MIN_BYTES",
        "65536",
        "Data that ends a batch reader's wait at once; below it, a fetch brings "
        "whatever came within BATCH_FETCH_MAX_WAIT_MS, so fetches stay few however busy the topics are",
        rule=_positive_integer,
    )
    kafka_security_protocol: str = _env(
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "How clients talk to Kafka: PLAINTEXT, or SASL_SSL (the secure profile)",
        rule=_one_of(*KAFKA_SECURITY_PROTOCOLS),
    )
    kafka_sasl_mechanism: str = _env(
        "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "SASL mechanism with SASL_SSL: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
    )
    kafka_sasl_username: str = _env(
        "KAFKA_SASL_USERNAME", "", "Kafka principal this process authenticates as (SASL_SSL)"
    )
    kafka_sasl_password: str = _env(
        "KAFKA_SASL_PASSWORD", "", "Password of KAFKA_SASL_USERNAME (or KAFKA_SASL_PASSWORD_FILE)"
    )
    kafka_sasl_password_file: str = _env(
        "KAFKA_SASL_PASSWORD_FILE",
        "",
        "File holding the password of KAFKA_SASL_USERNAME, instead of KAFKA_SASL_PASSWORD",
    )
    kafka_ssl_cafile: str = _env(
        "KAFKA_SSL_CAFILE", "", "PEM file of the CA that signed the brokers' certificates (empty: the system's CAs)"
    )
    identity_mode: str = _env(
        "IDENTITY_MODE",
        "off",
        "off: records are not checked for signatures (outcomes still only count from "
        "their assignee); verify: every record speaking for an agent must be signed with that agent's enrolled key",
        rule=_one_of("off", "verify"),
    )
    agent_signing_key_file: str = _env(
        "AGENT_SIGNING_KEY_FILE",
        "",
        "PEM file of the Ed25519 key an SDK agent signs what it publishes with "
        "(from `orchestrator agent enroll`; empty: unsigned)",
    )
    orchestrator_signing_key_file: str = _env(
        "ORCHESTRATOR_SIGNING_KEY_FILE",
        "",
        "PEM file of the Ed25519 key the router and the balancer sign their decisions with "
        "(`orchestrator agent enroll orchestrator`); required by them with IDENTITY_MODE=verify",
    )
    db_role_prefix: str = _env(
        "DB_ROLE_PREFIX",
        "orchestrator",
        "Prefix of the PostgreSQL roles `orchestrator db roles` creates: "
        "<prefix>_owner, <prefix>_audit_writer, <prefix>_analyst, <prefix>_keystore",
    )
    db_audit_writer_password: str = _env(
        "DB_AUDIT_WRITER_PASSWORD", "", "Login password of the audit writer role (empty: the role cannot log in)"
    )
    db_analyst_password: str = _env(
        "DB_ANALYST_PASSWORD", "", "Login password of the analyst role (empty: the role cannot log in)"
    )
    db_keystore_password: str = _env(
        "DB_KEYSTORE_PASSWORD", "", "Login password of the key store role (empty: the role cannot log in)"
    )

    health: HealthSettings = field(default_factory=HealthSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    balancer: BalancerSettings = field(default_factory=BalancerSettings)
    learner: LearnerSettings = field(default_factory=LearnerSettings)
    projector: ProjectorSettings = field(default_factory=ProjectorSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    keystore: KeystoreSettings = field(default_factory=KeystoreSettings)
    bench: BenchSettings = field(default_factory=BenchSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Every variable from `environ` (the process's environment by default); an override
        names a field as `<section>_<field>` (`router_seed=3`) or a common field (`db_schema=...`)."""
        environ = os.environ if environ is None else environ
        overrides = dict(overrides)
        sections = {}
        for name, section in SECTIONS.items():
            own = _own(overrides, name)
            sections[name] = section.read(environ, own)
            overrides.update({f"{name}_{key}": value for key, value in own.items()})  # what no field took
        common = cls.read(environ, overrides)
        if overrides:
            raise TypeError(f"unknown setting(s): {', '.join(overrides)}")
        settings = replace(common, **sections)
        settings.validate()
        return settings

    def replace(self, **overrides) -> "Settings":
        """These settings with some fields changed, named as in `from_env`."""
        changed = {name: replace(getattr(self, name), **own) for name in SECTIONS if (own := _own(overrides, name))}
        settings = replace(self, **overrides, **changed)
        settings.validate()
        return settings

    def validate(self) -> None:
        """What depends on several variables, or on the files they name."""
        if not re.match(r"^[A-Za-z0-9._-]+$", self.topic_prefix):
            raise ConfigError(
                f"ORCHESTRATOR_TOPIC_PREFIX may hold letters, digits, '.', '_' and '-', got {self.topic_prefix!r}"
            )
        if self.health.degraded_after_missed >= self.health.unhealthy_after_missed:
            raise ConfigError("HEALTH_DEGRADED_AFTER_MISSED must be less than HEALTH_UNHEALTHY_AFTER_MISSED")
        from services.router.policies import POLICIES  # late: settings must not depend on services at import

        if self.router.policy not in POLICIES:
            raise ConfigError(f"ROUTER_POLICY must be one of {', '.join(POLICIES)}, got {self.router.policy!r}")
        if self.agent_signing_key_file and not os.path.isfile(self.agent_signing_key_file):
            raise ConfigError(f"AGENT_SIGNING_KEY_FILE names no file: {self.agent_signing_key_file!r}")
        if self.orchestrator_signing_key_file and not os.path.isfile(self.orchestrator_signing_key_file):
            raise ConfigError(f"ORCHESTRATOR_SIGNING_KEY_FILE names no file: {self.orchestrator_signing_key_file!r}")
        if len(self.keystore.subject_digest_key) < 16:
            raise ConfigError("KEYSTORE_SUBJECT_DIGEST_KEY must have at least 16 characters")
        if self.audit.db_schema == self.db_schema:
            raise ConfigError("AUDIT_DB_SCHEMA must differ from ORCHESTRATOR_DB_SCHEMA: replay swaps the read models")
        if not re.match(r"^[a-z_][a-z0-9_]{0,40}$", self.db_role_prefix):
            raise ConfigError(f"DB_ROLE_PREFIX must be a short lower-case SQL identifier, got {self.db_role_prefix!r}")
        self._validate_kafka_security()

    @property
    def audit_group(self) -> str:
        return self.audit.group_id or f"{self.topic_prefix}.audit"

    @property
    def audit_url(self) -> str:
        return self.audit.database_url or self.database_url

    def _validate_kafka_security(self) -> None:
        if self.kafka_security_protocol == "PLAINTEXT":
            return
        if self.kafka_sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise ConfigError(
                f"KAFKA_SASL_MECHANISM must be one of {', '.join(KAFKA_SASL_MECHANISMS)}, "
                f"got {self.kafka_sasl_mechanism!r}"
            )
        if not self.kafka_sasl_username:
            raise ConfigError("KAFKA_SASL_USERNAME is required with KAFKA_SECURITY_PROTOCOL=SASL_SSL")
        if bool(self.kafka_sasl_password) == bool(self.kafka_sasl_password_file):
            raise ConfigError(
                "with KAFKA_SECURITY_PROTOCOL=SASL_SSL set exactly one of KAFKA_SASL_PASSWORD "
                "and KAFKA_SASL_PASSWORD_FILE"
            )
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
        return self.projector.group_id or f"{self.topic_prefix}.projector"

    @property
    def batch_size(self) -> int:
        return self.projector.batch_size

    @property
    def batch_timeout_ms(self) -> int:
        return self.projector.batch_timeout_ms

    @property
    def health_app(self) -> str:
        return self.health.app_id or f"{self.topic_prefix}.health"

    @property
    def router_app(self) -> str:
        return self.router.app_id or f"{self.topic_prefix}.router"

    @property
    def balancer_app(self) -> str:
        return self.balancer.app_id or f"{self.topic_prefix}.balancer"

    @property
    def learner_app(self) -> str:
        return self.learner.app_id or f"{self.topic_prefix}.learner"

    def topic(self, logical_name: str) -> str:
        return f"{self.topic_prefix}.{logical_name}"


SECTIONS: dict[str, type[_Section]] = {
    "health": HealthSettings,
    "router": RouterSettings,
    "balancer": BalancerSettings,
    "learner": LearnerSettings,
    "projector": ProjectorSettings,
    "audit": AuditSettings,
    "keystore": KeystoreSettings,
    "bench": BenchSettings,
    "dashboard": DashboardSettings,
}


def _own(overrides: dict, section: str) -> dict:
    """Takes the overrides named `<section>_<field>` out of `overrides`, by their field's name."""
    return {
        key.removeprefix(f"{section}_"): overrides.pop(key) for key in list(overrides) if key.startswith(f"{section}_")
    }


def variables(settings: Settings | None = None) -> list[tuple[object, Field]]:
    """Every variable: (the object holding it, its field), the common ones first."""
    settings = settings or Settings()
    owners = [settings] + [getattr(settings, name) for name in SECTIONS]
    return [(owner, f) for owner in owners for f in fields(owner) if "env" in f.metadata]


def documented_variables() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for the README and `orchestrator config`."""
    return [(f.metadata["env"], f.metadata["default"], f.metadata["doc"]) for _, f in variables()]


def as_environ(settings: Settings) -> dict[str, str]:
    """Every variable as the environment of a child process would carry it."""
    return {f.metadata["env"]: str(getattr(owner, f.name)) for owner, f in variables(settings)}
