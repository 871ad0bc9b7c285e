"""The hub on a Kafka that wants TLS or SASL, against real peers: every role, and clear refusals.

TLS: tansu behind Debian's stunnel4, advertising only the TLS port (``tls_support``). The whole
hub (``signalhub up`` against that external Kafka) takes the four connectors' signals over TLS
with CA and hostname verification, delivers and audits them. A wrong CA, or an address the
certificate does not name, stops a role within 15 s with the TLS cause in one line.

SASL: ``tansu broker --authentication`` refuses anonymous clients and answers the SCRAM-SHA-512
exchange, but no user could be provisioned on it (``tansu user create`` against it is itself
refused, and users did not survive a restart), so the success path of SASL is not tested here:
wrong credentials and an anonymous client must each fail at once, saying which.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from process_support import environment_without_settings, run_signalhub
from signalhub.broker.clients import KafkaSecurity, use_kafka_security
from tls_support import Certificates, tansu, tansu_behind_tls
from up_support import RunningHub

pytestmark = pytest.mark.integration

CONNECTORS = ("gemeente", "politie", "schuldhulpverlening", "woningcorporatie")
#: The bound the issue sets on a role that cannot connect: exit within this, with the cause.
FAIL_BOUND_S = 15.0


def _role(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """``signalhub enforcer`` in ``env``; what it printed and how long it took to exit."""
    clean = environment_without_settings() | {"SIGNALHUB_STATE_DIR": str(tmp_path / "state")}
    return run_signalhub(["enforcer"], clean | env, timeout_s=FAIL_BOUND_S)  # a hang fails here


def _tls_env(bootstrap: str, ca: Path) -> dict[str, str]:
    return {
        "SIGNALHUB_BOOTSTRAP_SERVERS": bootstrap,
        "SIGNALHUB_KAFKA_SECURITY_PROTOCOL": "SSL",
        "SIGNALHUB_KAFKA_SSL_CAFILE": str(ca),
    }


@pytest.fixture
def tls_kafka(tmp_path: Path) -> Iterator[tuple[str, Certificates]]:
    with tansu_behind_tls(tmp_path / "kafka") as found:
        yield found


def test_every_role_runs_the_flow_over_tls(
    tmp_path: Path, tls_kafka: tuple[str, Certificates]
) -> None:
    bootstrap, certificates = tls_kafka
    hub = RunningHub(tmp_path / "state", **_tls_env(bootstrap, certificates.ca))
    with hub:
        hub.wait_ready()
        for name in CONNECTORS:
            run = hub.cli("connector", "run", name)
            assert run.returncode == 0, run.stderr
        summary = hub.wait_reconciled()
        counted = re.search(r"(\d+) decisions on the audit topic, (\d+) in the store", summary)
        assert counted, summary
        assert int(counted.group(1)) == int(counted.group(2)) > 100
        use_kafka_security(KafkaSecurity(protocol="SSL", cafile=certificates.ca))
        try:
            deliveries = hub.deliveries(bootstrap)
        finally:
            use_kafka_security(KafkaSecurity())
        assert len({d.subscriber for d in deliveries}) >= 3, deliveries[:3]
    assert hub.process is not None
    assert hub.process.returncode == 0, hub.output


def test_a_wrong_ca_stops_a_role_at_once_naming_tls(
    tmp_path: Path, tls_kafka: tuple[str, Certificates]
) -> None:
    bootstrap, certificates = tls_kafka
    result, took = _role(_tls_env(bootstrap, certificates.other_ca), tmp_path)
    assert result.returncode != 0
    assert "TLS verification failed" in result.stderr, result.stderr
    assert "unable to get local issuer certificate" in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line
    print(f"\nwrong CA: exit {result.returncode} after {took:.1f} s: {result.stderr.strip()}")


def test_an_address_the_certificate_does_not_name_stops_a_role(
    tmp_path: Path, tls_kafka: tuple[str, Certificates]
) -> None:
    bootstrap, certificates = tls_kafka
    by_ip = bootstrap.replace("localhost", "127.0.0.1")  # the certificate names localhost only
    result, _ = _role(_tls_env(by_ip, certificates.ca), tmp_path)
    assert result.returncode != 0
    assert "TLS verification failed" in result.stderr, result.stderr
    assert "mismatch" in result.stderr


def test_wrong_scram_credentials_stop_a_role_saying_authentication_failed(
    tmp_path: Path,
) -> None:
    password = tmp_path / "password"
    password.write_text("not-the-password\n")
    with tansu(tmp_path / "kafka", authentication=True) as port:
        result, took = _role(
            {
                "SIGNALHUB_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
                "SIGNALHUB_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "SIGNALHUB_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "SIGNALHUB_KAFKA_USERNAME": "enforcer",
                "SIGNALHUB_KAFKA_PASSWORD_FILE": str(password),
            },
            tmp_path,
        )
    assert result.returncode != 0
    assert "authentication failed" in result.stderr, result.stderr
    assert "not-the-password" not in result.stderr + result.stdout
    print(f"\nwrong SCRAM: exit {result.returncode} after {took:.1f} s: {result.stderr.strip()}")


def test_an_anonymous_client_is_refused_by_an_authenticating_broker(tmp_path: Path) -> None:
    with tansu(tmp_path / "kafka", authentication=True) as port:
        result, _ = _role({"SIGNALHUB_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}, tmp_path)
    assert result.returncode != 0
    assert "the connection was closed at once" in result.stderr, result.stderr
    assert "require TLS or SASL" in result.stderr
