"""Client settings of the secure profile: validated in services/settings.py, turned into client
options in one function of services/kafka.py."""

import os
import re
import ssl
import subprocess
from pathlib import Path

import pytest

from services import kafka
from services.faust_worker import faust_credentials
from services.settings import ConfigError, Settings


def secure(tmp_path, **overrides) -> dict:
    password = tmp_path / "admin.password"
    password.write_text("s3cret\n")
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "admin",
        "KAFKA_SASL_PASSWORD_FILE": str(password),
        **overrides,
    }


def test_plaintext_is_the_default_and_adds_no_credentials():
    options = kafka.connection_options(Settings.from_env({}))
    assert options == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(Settings.from_env({})) is None


def test_sasl_ssl_options_carry_the_password_from_its_file_and_check_host_names(tmp_path):
    options = kafka.connection_options(Settings.from_env(secure(tmp_path)))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("admin", "s3cret")
    assert options["ssl_context"].check_hostname is True
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_faust_gets_the_same_credentials(tmp_path):
    credentials = faust_credentials(Settings.from_env(secure(tmp_path, KAFKA_SASL_MECHANISM="SCRAM-SHA-256")))
    assert (credentials.username, credentials.password) == ("admin", "s3cret")
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.ssl_context.check_hostname is True


def test_a_password_in_the_variable_works_too(tmp_path):
    env = {**secure(tmp_path), "KAFKA_SASL_PASSWORD_FILE": "", "KAFKA_SASL_PASSWORD": "inline"}
    assert kafka.connection_options(Settings.from_env(env))["sasl_plain_password"] == "inline"


@pytest.mark.parametrize(
    "overrides, complaint",
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SSL"}, "KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SASL_SSL"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM must be one of"),
        ({"KAFKA_SASL_USERNAME": ""}, "KAFKA_SASL_USERNAME is required"),
        ({"KAFKA_SASL_PASSWORD_FILE": ""}, "exactly one of KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE"),
        ({"KAFKA_SASL_PASSWORD": "both"}, "exactly one of KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE"),
        (
            {"KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"},
            "KAFKA_SASL_PASSWORD_FILE '/nonexistent/pw' is not a readable",
        ),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE '/nonexistent/ca.pem' is not a readable"),
    ],
)
def test_a_bad_secure_configuration_is_a_clear_error(tmp_path, overrides, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env(secure(tmp_path, **overrides))


def test_an_empty_password_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        Settings.from_env(secure(tmp_path, KAFKA_SASL_PASSWORD_FILE=str(empty)))


def test_the_generated_broker_certificate_is_signed_by_the_ca_for_the_local_host_names(tmp_path):
    from cryptography import x509

    from services.security.material import ensure_material

    ensure_material(tmp_path, ["admin"])
    chain = x509.load_pem_x509_certificates((tmp_path / "tls" / "broker.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "tls" / "ca.pem").read_bytes())
    broker = chain[0]
    broker.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert (tmp_path / "credentials" / "admin.password").stat().st_mode & 0o077 == 0


def test_generating_again_keeps_the_ca_and_passwords_and_adds_only_new_principals(tmp_path):
    from services.security.material import ensure_material

    ensure_material(tmp_path, ["admin"])
    before = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    created = ensure_material(tmp_path, ["admin", "router"])
    after = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert created == ["password of router"]
    assert {name: after[name] for name in before} == before


async def test_clients_linger_as_configured_and_send_at_once_by_default():
    # Linger adds its whole length to every hop while traffic is light: a lone record waits for company.
    default = kafka.producer(Settings.from_env({}))
    batching = kafka.producer(Settings.from_env({"KAFKA_LINGER_MS": "7"}))
    try:
        assert default._message_accumulator._linger_time == 0
        assert batching._message_accumulator._linger_time == 0.007
    finally:
        await default.stop()
        await batching.stop()


def stack_env(*profile: str) -> dict[str, str]:
    root = Path(__file__).resolve().parents[2]
    # Only what the script needs: no endpoint of the caller's own stack.
    clean = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    out = subprocess.run(
        ["bash", str(root / "infra" / "stack.sh"), "env", *profile],
        env=clean,
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return dict(re.findall(r"export (\w+)=(\S+)", out))


def test_the_secure_profile_verifies_who_speaks_and_the_plaintext_one_does_not():
    assert stack_env("--secure")["IDENTITY_MODE"] == "verify"
    assert "IDENTITY_MODE" not in stack_env()
