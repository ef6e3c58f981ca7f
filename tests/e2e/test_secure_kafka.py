"""The secure profile against its real broker: SASL_SSL with SCRAM, the project's CA, and ACLs
per principal from infra/acls.toml. Negative tests first.

The broker is the one `infra/stack.sh up --secure` runs (started here when it is not running),
whichever profile the rest of the suite uses; each test has a topic prefix of its own, and the
ACLs of that prefix are applied by `orchestrator acl apply` as the admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from services import kafka
from services.sdk import Agent, Capability, Completed, Task
from services.security import broker_acls
from services.security.acls import Binding, bindings, load
from services.security.material import new_authority, pem_certificate
from services.settings import Settings
from tests.conftest import delete_topics
from tests.e2e.helpers import drop_schema, env_of, fetch, projected, wait_for
from tests.e2e.test_identity import parked
from tests.signing import agent_key, with_orchestrator_key

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STACK = ["bash", str(ROOT / "infra" / "stack.sh")]
FAILS_FAST = {"request_timeout_ms": 5000, "retry_backoff_ms": 100}
PROCESSORS = ("projector", "health", "router", "balancer", "learner", "audit")


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    cafile: str
    credentials: Path

    def password_file(self, principal: str) -> str:
        return str(self.credentials / f"{principal}.password")


@pytest.fixture(scope="session")
def secure_broker() -> SecureBroker:
    # Idempotent: starts the secure broker when it is not running, whatever profile the suite uses.
    subprocess.run([*STACK, "up", "--secure"], check=True, cwd=ROOT)
    out = subprocess.run([*STACK, "env", "--secure"], check=True, cwd=ROOT, capture_output=True, text=True).stdout
    env = dict(re.findall(r"export (\w+)=(\S+)", out))
    return SecureBroker(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_SSL_CAFILE"], Path(env["KAFKA_SASL_PASSWORD_FILE"]).parent
    )


def as_principal(settings: Settings, broker: SecureBroker, principal: str, **overrides) -> Settings:
    """This test's settings, on the secure broker as `principal`: configuration alone."""
    secure = {
        "kafka_bootstrap_servers": broker.bootstrap,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": principal,
        "kafka_sasl_password": "",
        "kafka_sasl_password_file": broker.password_file(principal),
        "kafka_ssl_cafile": broker.cafile,
    }
    chosen = settings.replace(**{**secure, **overrides})
    chosen.validate()
    return chosen


@pytest.fixture
async def admin(settings, secure_broker) -> Settings:
    """Admin on the secure broker, with this test's topics created and its ACLs applied."""
    admin = as_principal(settings, secure_broker, "admin")
    await kafka.ensure_topics(admin)
    await broker_acls.apply(admin, bindings(load(), admin.topic_prefix))
    yield admin
    await broker_acls.apply(admin, [])  # leave no ACL of this prefix behind
    await asyncio.to_thread(delete_topics, admin)  # the suite's own cleanup deletes them on its broker only


async def produce(settings: Settings, logical_topic: str, **options) -> None:
    producer = kafka.producer(settings, **FAILS_FAST, **options)
    await kafka.start(producer, settings)
    try:
        await asyncio.wait_for(producer.send_and_wait(settings.topic(logical_topic), b"{}", key=b"k"), 20)
    finally:
        await producer.stop()


async def consume_one_batch(settings: Settings, logical_topic: str, patience_s: float = 1.5) -> None:
    """Read a topic from its start for `patience_s` or until a record comes. A topic the principal
    may not even describe fails the start; one it may describe but not read, the first fetch."""
    consumer = kafka.consumer(settings, settings.topic(logical_topic), **FAILS_FAST)
    await kafka.start(consumer, settings)
    try:
        deadline = asyncio.get_running_loop().time() + patience_s
        while asyncio.get_running_loop().time() < deadline:
            if await asyncio.wait_for(consumer.getmany(timeout_ms=200), 20):
                return
    finally:
        await consumer.stop()


async def commit_in_group(settings: Settings, group: str, logical_topic: str) -> None:
    consumer = kafka.consumer(settings, group_id=group, **FAILS_FAST)
    await kafka.start(consumer, settings)
    try:
        tp = TopicPartition(settings.topic(logical_topic), 0)
        consumer.assign([tp])
        await asyncio.wait_for(consumer.commit({tp: 0}), 20)
    finally:
        await consumer.stop()


async def start_transactions(settings: Settings, transactional_id: str) -> None:
    producer = kafka.producer(settings, transactional_id=transactional_id, **FAILS_FAST)
    try:
        await asyncio.wait_for(producer.start(), 20)
    finally:
        await producer.stop()


async def cannot_connect(settings: Settings) -> Exception:
    admin = kafka.admin_client(settings, **FAILS_FAST)
    with pytest.raises(Exception) as caught:
        await asyncio.wait_for(kafka.start(admin, settings), 20)
        await asyncio.wait_for(admin.list_topics(), 20)  # only reached if start() let it through
    await admin.close()
    return caught.value


# --- who gets in ----------------------------------------------------------------------


async def test_a_wrong_password_is_rejected(settings, secure_broker):
    intruder = as_principal(
        settings, secure_broker, "projector", kafka_sasl_password_file="", kafka_sasl_password="not-the-password"
    )
    error = await cannot_connect(intruder)
    assert "SaslAuthenticationFailed" in str(error)


async def test_an_unknown_user_is_rejected(settings, secure_broker):
    stranger = as_principal(
        settings, secure_broker, "mallory", kafka_sasl_password_file="", kafka_sasl_password="guess"
    )
    error = await cannot_connect(stranger)
    assert "SaslAuthenticationFailed" in str(error)


async def test_an_anonymous_plaintext_client_gets_nothing_from_the_tls_listener(settings, secure_broker):
    anonymous = settings.replace(
        kafka_bootstrap_servers=secure_broker.bootstrap,
        kafka_security_protocol="PLAINTEXT",
        kafka_sasl_username="",
        kafka_sasl_password="",
        kafka_sasl_password_file="",
    )
    assert "closed" in str(await cannot_connect(anonymous))
    # The same with the stack's raw probe: a plaintext Metadata request gets no answer.
    probe = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "probe.py"), "kafka", secure_broker.bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 1, probe.stdout


async def test_a_client_that_does_not_trust_the_project_ca_refuses_the_broker(settings, secure_broker, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(pem_certificate(new_authority("someone else's CA").certificate))
    untrusting = as_principal(settings, secure_broker, "admin", kafka_ssl_cafile=str(other_ca))
    assert "CERTIFICATE_VERIFY_FAILED" in str(await cannot_connect(untrusting))


def test_clients_check_the_broker_certificate_names_the_host_they_dialled(secure_broker):
    host, port = secure_broker.bootstrap.rsplit(":", 1)
    context = kafka.ssl_context(secure_broker.cafile)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:  # the name in the certificate
            assert tls.getpeercert()["subjectAltName"]
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch|IP address mismatch"):
            context.wrap_socket(raw, server_hostname="kafka.example.com")


async def test_the_right_password_and_ca_get_in(settings, secure_broker):
    admin = kafka.admin_client(as_principal(settings, secure_broker, "projector"))
    await kafka.start(admin, settings)
    try:
        assert (await admin.describe_cluster())["brokers"]
    finally:
        await admin.close()


# --- what each principal may do -------------------------------------------------------

# A topic, a group and a transactional id that belong to someone else, per processor.
NOT_ITS_OWN = {
    "projector": ("tasks", "router", "router-tx"),
    "health": ("tasks", "projector", "balancer-tx"),
    "router": ("assignments", "balancer", "balancer-tx"),
    "balancer": ("models", "router", "router-tx"),
    "learner": ("assignments", "health", "health-tx"),
    "audit": ("tasks", "projector", "projector-tx"),
}


@pytest.mark.parametrize("processor", PROCESSORS)
async def test_a_processor_may_not_write_a_topic_that_is_not_its_own(admin, secure_broker, processor):
    topic, _, _ = NOT_ITS_OWN[processor]
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(as_principal(admin, secure_broker, processor), topic)


@pytest.mark.parametrize("processor", PROCESSORS)
async def test_a_processor_may_not_use_another_processors_group(admin, secure_broker, processor):
    _, group, _ = NOT_ITS_OWN[processor]
    with pytest.raises(GroupAuthorizationFailedError):
        await commit_in_group(as_principal(admin, secure_broker, processor), f"{admin.topic_prefix}.{group}", "tasks")


@pytest.mark.parametrize("processor", PROCESSORS)
async def test_a_processor_may_not_use_another_processors_transactional_id(admin, secure_broker, processor):
    _, _, transactional_id = NOT_ITS_OWN[processor]
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await start_transactions(
            as_principal(admin, secure_broker, processor), f"{admin.topic_prefix}.{transactional_id}"
        )


async def test_a_processor_may_write_its_outputs_and_use_its_own_group(admin, secure_broker):
    router = as_principal(admin, secure_broker, "router")
    await produce(router, "tasks")
    await commit_in_group(router, f"{admin.topic_prefix}.router", "tasks")
    await start_transactions(router, f"{admin.topic_prefix}.router-1")


async def test_the_audit_principal_reads_every_topic_but_writes_none_of_them(admin, secure_broker):
    audit = as_principal(admin, secure_broker, "audit")
    for topic in ("tasks", "task-outcomes", "assignments", "heartbeats"):
        await consume_one_batch(audit, topic)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(audit, "task-outcomes")


async def test_an_agent_may_not_submit_or_route_tasks(admin, secure_broker):
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(as_principal(admin, secure_broker, "agent"), "tasks")


async def test_an_agent_may_not_read_outcomes_or_tasks(admin, secure_broker):
    agent = as_principal(admin, secure_broker, "agent")
    for topic in ("task-outcomes", "tasks"):
        with pytest.raises(TopicAuthorizationFailedError):
            await consume_one_batch(agent, topic, patience_s=30)


async def test_an_agent_may_not_write_assignments_to_itself(admin, secure_broker):
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(as_principal(admin, secure_broker, "agent-2"), "assignments")


async def test_an_agent_writes_its_reports_and_reads_its_assignments(admin, secure_broker):
    agent = as_principal(admin, secure_broker, "agent")
    for topic in ("agents", "heartbeats", "task-outcomes"):
        await produce(agent, topic)
    await consume_one_batch(agent, "assignments")
    await start_transactions(agent, f"{admin.topic_prefix}.agent.agent-7")


async def test_a_submitter_writes_tasks_and_reads_what_becomes_of_them_and_nothing_else(admin, secure_broker):
    submitter = as_principal(admin, secure_broker, "submitter")
    await produce(submitter, "tasks")
    for topic in ("tasks", "task-outcomes"):
        await consume_one_batch(submitter, topic)
    for topic in ("assignments", "task-outcomes", "agents", "security", "dead-letter"):
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(submitter, topic)
    for topic in ("assignments", "agents", "health", "security"):
        with pytest.raises(TopicAuthorizationFailedError):
            await consume_one_batch(submitter, topic, patience_s=30)
    with pytest.raises(GroupAuthorizationFailedError):
        await commit_in_group(submitter, f"{admin.topic_prefix}.router-tasks", "tasks")


async def test_the_health_monitor_reads_only_agents_heartbeats_and_keys(admin, secure_broker):
    health = as_principal(admin, secure_broker, "health")
    for topic in ("agents", "heartbeats", "security"):
        await consume_one_batch(health, topic)
    for topic in ("assignments", "tasks", "task-outcomes"):
        with pytest.raises(TopicAuthorizationFailedError):
            await consume_one_batch(health, topic, patience_s=30)


async def test_the_admin_may_do_everything(admin):
    for topic in ("tasks", "task-outcomes", "assignments", "models"):
        await produce(admin, topic)
        await consume_one_batch(admin, topic)
    await commit_in_group(admin, f"{admin.topic_prefix}.anything", "tasks")
    await start_transactions(admin, f"{admin.topic_prefix}.anything")


async def test_topics_ensure_as_a_processor_reports_the_topics_it_may_not_see(admin, secure_broker):
    checks = {
        check.name: check.action for check in await kafka.ensure_topics(as_principal(admin, secure_broker, "learner"))
    }
    assert checks[admin.topic("heartbeats")] == "unauthorized"  # the learner has no business there
    assert checks[admin.topic("task-outcomes")] == checks[admin.topic("models")] == "ok"


# --- acl apply ------------------------------------------------------------------------


async def test_acl_apply_removes_what_the_file_does_not_say_and_a_second_apply_changes_nothing(admin):
    stray = Binding("User:agent", "topic", "literal", admin.topic("tasks"), "write")
    await broker_acls.with_admin(admin, lambda client: broker_acls.create(client, [stray]))
    assert stray in await broker_acls.in_force(admin)

    env = env_of(admin)
    first = subprocess.run(
        [sys.executable, "-m", "services.cli", "acl", "apply"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    second = subprocess.run(
        [sys.executable, "-m", "services.cli", "acl", "apply"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert first.returncode == 0, first.stderr
    assert f"- {stray}" in first.stdout and "added 0, removed 1" in first.stdout
    assert second.returncode == 0 and "added 0, removed 0" in second.stdout
    assert stray not in await broker_acls.in_force(admin)
    assert sorted(await broker_acls.in_force(admin)) == bindings(load(), admin.topic_prefix)


async def test_acl_apply_as_a_processor_is_refused(admin, secure_broker):
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "acl", "apply"],
        env=env_of(as_principal(admin, secure_broker, "router")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "orchestrator: " in result.stderr and "error 31" in result.stderr.lower()


# --- the whole loop through configuration alone -----------------------------------------


@contextlib.contextmanager
def serving(processors: dict[str, Settings]):
    """`orchestrator serve <name>` per processor, each as its own principal; SIGTERM at the end."""
    processes = {
        name: subprocess.Popen([sys.executable, "-m", "services.cli", "serve", name], env=env_of(chosen), cwd=ROOT)
        for name, chosen in processors.items()
    }
    try:
        yield processes
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_an_sdk_agent_and_the_processors_each_as_its_own_principal_complete_a_task(
    admin, secure_broker, tmp_path
):
    """Also a submitter's forged decision: it may write the tasks topic, but a decision there counts
    only signed with the orchestrator's key. Parked with its reason; the processors keep running."""
    # The secure profile's identity mode, whichever profile the rest of the suite uses.
    admin = await with_orchestrator_key(admin.replace(identity_mode="verify"), tmp_path)

    def principal(name: str, **overrides) -> Settings:
        return as_principal(admin, secure_broker, name, metrics_port="0", **overrides)

    data_dirs = {f"{name}_data_dir": str(tmp_path) for name in ("health", "router", "balancer", "learner")}
    processors = {
        name: principal(name, **data_dirs) for name in ("projector", "health", "router", "balancer", "learner")
    }
    done = []

    async def handle(task: Task) -> Completed:
        done.append(task.task_id)
        return Completed(result_summary=f"did {task.task_id}")

    agent = Agent(
        "secure-agent-1",
        [Capability(name="python", proficiency=0.9)],
        2,
        handle,
        heartbeat_interval=0.5,
        drain_timeout=10.0,
        settings=principal("agent"),
        signing_key=await agent_key(admin, "secure-agent-1"),
    )
    try:
        with serving(processors) as processes:
            runner = asyncio.create_task(agent.run())
            await wait_for(lambda: _ready(agent, runner), timeout=60, what="the agent to be ready")
            submit = subprocess.run(
                [sys.executable, "-m", "services.cli", "publish", "--type", "TaskSubmitted"],
                input='{"task_id": "secure-task-1", "requirements": [{"name": "python"}], "submitter": "ops"}',
                env=env_of(principal("submitter")),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert submit.returncode == 0, submit.stderr
            rows = await wait_for(
                lambda: projected(
                    admin,
                    "SELECT status, assigned_agent_id FROM tasks "
                    "WHERE task_id = 'secure-task-1' AND status = 'completed'",
                ),
                timeout=120,
                what="the task completed in the read models",
            )
            assert all(p.poll() is None for p in processes.values()), "a processor stopped"

            forged = subprocess.run(
                [sys.executable, "-m", "services.cli", "publish", "--type", "TaskTimedOut", "--producer", "balancer"],
                input='{"task_id": "secure-task-1", "attempt": 1, "stage": "completion", "reason": "forged"}',
                env=env_of(principal("submitter")),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert forged.returncode == 0, forged.stderr
            violations = await wait_for(
                lambda: projected(
                    admin,
                    "SELECT kind, agent_id, detail FROM security_events "
                    "WHERE kind NOT IN ('key_enrolled', 'key_revoked')",
                ),
                timeout=60,
                what="the forged decision reported",
            )
            dead = await wait_for(lambda: parked(admin), timeout=30, what="the forged decision parked")
            [task] = await fetch(admin, "SELECT status FROM tasks WHERE task_id = 'secure-task-1'")
            assert all(p.poll() is None for p in processes.values()), "a processor stopped"
            await asyncio.wait_for(agent.stop(), 30)
            runner.result()
    finally:
        await drop_schema(admin, admin.db_schema)

    assert done == ["secure-task-1"]
    assert rows[0]["assigned_agent_id"] == "secure-agent-1"
    assert [(v["kind"], v["agent_id"], v["detail"]["event_type"]) for v in violations] == [
        ("unsigned", "orchestrator", "TaskTimedOut")
    ]
    assert [(p.error_class, p.origin_topic, p.processor) for p in dead] == [
        ("IdentityViolation", admin.topic("tasks"), "projector")
    ]
    assert dead[0].error_message.startswith("unsigned: TaskTimedOut for orchestrator")
    assert task["status"] == "completed"  # not timed out by the forgery


async def _ready(agent: Agent, runner: asyncio.Task) -> bool:
    if runner.done():
        runner.result()  # the agent failed: show why
    return agent.ready.is_set()
