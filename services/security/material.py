"""Key material of the secure local broker: a CA, the broker's certificate, a password per principal.

    python -m services.security.material DIR PRINCIPAL...

creates under DIR what is missing and keeps what is there (so clients keep working across
restarts): tls/ca.pem (what clients trust), tls/ca.key, tls/broker.pem (the broker's key and
certificate, for 127.0.0.1 and localhost) and credentials/<principal>.password (mode 0600).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_HOSTS = ("localhost",)
BROKER_IPS = ("127.0.0.1",)
VALID_FOR = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Authority:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "orchestrator local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
    )


def new_authority(common_name: str = "orchestrator local CA") -> Authority:
    key = _key()
    certificate = (
        _builder(_name(common_name), _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


def server_certificate(
    authority: Authority, hosts=BROKER_HOSTS, ips=BROKER_IPS
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = _key()
    names = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    certificate = (
        _builder(_name(hosts[0]), authority.certificate.subject, key.public_key())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # The broker is also a client: of its own controller and inter-broker listeners.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(authority.key, hashes.SHA256())
    )
    return key, certificate


def pem_certificate(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def pem_key(key: rsa.RSAPrivateKey) -> bytes:
    # Unencrypted PKCS#8: what Kafka's PEM key store reads without ssl.key.password. The file
    # is readable by its owner only.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_password() -> str:
    return secrets.token_urlsafe(24)  # URL-safe: no quote or comma to escape in --add-scram or JAAS


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(path.suffix + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(path.with_suffix(path.suffix + ".tmp"), path)


def ensure_material(directory: Path, principals: list[str]) -> list[str]:
    """Create what is missing under `directory`; returns what was created, for the log."""
    created = []
    tls = directory / "tls"
    ca_pem, ca_key, broker_pem = tls / "ca.pem", tls / "ca.key", tls / "broker.pem"
    if not (ca_pem.exists() and ca_key.exists()):
        authority = new_authority()
        _write_private(ca_key, pem_key(authority.key))
        _write_private(ca_pem, pem_certificate(authority.certificate))
        broker_pem.unlink(missing_ok=True)  # signed by the old CA
        created.append("CA")
    if not broker_pem.exists():
        authority = Authority(
            serialization.load_pem_private_key(ca_key.read_bytes(), password=None),
            x509.load_pem_x509_certificate(ca_pem.read_bytes()),
        )
        key, certificate = server_certificate(authority)
        _write_private(broker_pem, pem_key(key) + pem_certificate(certificate) + pem_certificate(authority.certificate))
        created.append("broker certificate")
    for principal in principals:
        password = directory / "credentials" / f"{principal}.password"
        if not password.exists():
            _write_private(password, new_password().encode())
            created.append(f"password of {principal}")
    return created


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    created = ensure_material(Path(argv[0]), argv[1:])
    if created:
        print("created " + ", ".join(created))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
