"""Kafka over TLS and with SASL, from real peers: tansu behind stunnel, and tansu --authentication.

tansu 0.6.0's own ``--cert``/``--key`` flags were seen to accept plaintext and not answer TLS, so
TLS is terminated by Debian's ``stunnel4`` in front of a plaintext tansu, and tansu advertises
the TLS port (as ``localhost``) so that metadata sends every client back through TLS.
Certificates are made here: a CA, a server certificate for ``localhost`` only (no IP address,
so connecting to ``127.0.0.1`` fails hostname verification), and a second, unrelated CA.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signalhub.broker.embedded import tansu_binary
from signalhub.broker.process import free_port, port_open

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
START_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Certificates:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_certificates(folder: Path) -> Certificates:
    """A CA and a ``localhost`` server certificate it signed, plus an unrelated CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("signalhub test CA")
    _, other_cert = _ca("some other CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    certificates = Certificates(
        ca=folder / "ca.pem",
        other_ca=folder / "other-ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
    )
    certificates.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certificates.other_ca.write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    certificates.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, certificates.server_key)
    return certificates


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open("127.0.0.1", port):
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not listen on {port} within {START_TIMEOUT_S} s")
        time.sleep(0.05)


@contextmanager
def _running(argv: list[str], log: Path, port: int, what: str) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, what)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def tansu(
    folder: Path, *, advertised: str | None = None, authentication: bool = False
) -> Iterator[int]:
    """A plaintext tansu with memory storage on a free loopback port; yields the port."""
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        advertised or listener,
        "--storage-engine",
        "memory://tansu/",
    ]
    if authentication:
        argv.append("--authentication")
    folder.mkdir(parents=True, exist_ok=True)
    with _running(argv, folder / f"tansu-{port}.log", port, "tansu"):
        yield port


@contextmanager
def tansu_behind_tls(folder: Path) -> Iterator[tuple[str, Certificates]]:
    """tansu reachable only through TLS as ``localhost:<port>``; yields that address and certs."""
    if STUNNEL is None:
        pytest.skip("stunnel4 is not installed (.ci/prepare installs it: apt-get install stunnel4)")
    certificates = make_certificates(folder / "certs")
    tls_port = free_port()
    with tansu(folder, advertised=f"tcp://localhost:{tls_port}") as plain_port:
        config = folder / "stunnel.conf"
        config.write_text(
            "foreground = yes\n"
            "pid =\n"
            "debug = warning\n"
            "[kafka]\n"
            f"accept = 127.0.0.1:{tls_port}\n"
            f"connect = 127.0.0.1:{plain_port}\n"
            f"cert = {certificates.server_cert}\n"
            f"key = {certificates.server_key}\n"
        )
        with _running([STUNNEL, str(config)], folder / "stunnel.log", tls_port, "stunnel"):
            yield f"localhost:{tls_port}", certificates
