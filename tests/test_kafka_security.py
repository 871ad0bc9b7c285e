"""Kafka security settings: typed, checked at start, and applied by the one client factory.

The settings keep the names docker-compose.yml uses (``SIGNALHUB_KAFKA_SECURITY_PROTOCOL``,
``_SASL_MECHANISM``, ``_USERNAME``, ``_PASSWORD_FILE``) and add ``_SSL_CAFILE``, ``_SSL_CERTFILE``,
``_SSL_KEYFILE`` and ``_SSL_CHECK_HOSTNAME``. A setting that could only fail later, in every
client, fails at start; so does a ``SIGNALHUB_*`` variable no setting reads.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from process_support import environment_without_settings, run_signalhub
from signalhub.broker.clients import (
    PLAINTEXT,
    KafkaConnection,
    KafkaSecurity,
    client_options,
    new_faust_app,
)
from signalhub.config import OTHER_SETTING_NAMES, Settings, load_settings, unknown_variables
from signalhub.console.settings import ConsoleSettings
from signalhub.errors import ConfigError
from tls_support import make_certificates

EXTERNAL = {"bootstrap_servers": "kafka:9092"}


def _password_file(tmp_path: Path, password: str = "s3cret") -> Path:
    path = tmp_path / "kafka.password"
    path.write_text(password + "\n")
    return path


def test_sasl_settings_reach_every_kafka_python_client(tmp_path: Path) -> None:
    settings = load_settings(
        **EXTERNAL,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_username="enforcer",
        kafka_password_file=_password_file(tmp_path),
    )
    options = client_options(KafkaConnection.from_settings(settings, "kafka:9092"))
    assert options == {
        "bootstrap_servers": "kafka:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "enforcer",
        "sasl_plain_password": "s3cret",  # read from the file, trailing newline dropped
    }
    assert "s3cret" not in repr(KafkaSecurity.from_settings(settings))


def test_tls_settings_make_one_verifying_context(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path)
    settings = load_settings(
        **EXTERNAL,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_username="http",
        kafka_password_file=_password_file(tmp_path),
        kafka_ssl_cafile=certificates.ca,
        kafka_ssl_certfile=certificates.server_cert,
        kafka_ssl_keyfile=certificates.server_key,
    )
    security = KafkaSecurity.from_settings(settings)
    context = client_options(KafkaConnection("kafka:9093", security))["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname, "hostname verification is on by default"

    app = new_faust_app(KafkaConnection("kafka:9093,kafka2:9093", security), settings, "g")
    credentials = app.conf.broker_credentials
    assert [str(url) for url in app.conf.broker] == ["kafka://kafka:9093", "kafka://kafka2:9093"]
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert (credentials.username, credentials.password) == ("http", "s3cret")
    assert credentials.ssl_context.check_hostname


def test_plaintext_adds_nothing_to_the_clients() -> None:
    assert client_options(KafkaConnection("127.0.0.1:9092", PLAINTEXT)) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    app = new_faust_app(KafkaConnection("h:1", PLAINTEXT), load_settings(), "g")
    assert app.conf.broker_credentials is None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs an external Kafka"),
        (
            {**EXTERNAL, "kafka_security_protocol": "SASL_SSL", "kafka_username": "u"},
            "SIGNALHUB_KAFKA_SASL_MECHANISM, SIGNALHUB_KAFKA_PASSWORD_FILE",
        ),
        ({**EXTERNAL, "kafka_username": "u"}, "SASL settings are given"),
        ({**EXTERNAL, "kafka_ssl_cafile": "/ca.pem"}, "TLS files are given"),
        (
            {**EXTERNAL, "kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/c.pem"},
            "go together",
        ),
        ({**EXTERNAL, "kafka_sasl_mechanism": "GSSAPI"}, "SIGNALHUB_KAFKA_SASL_MECHANISM"),
    ],
)
def test_a_security_setting_that_could_only_fail_later_fails_at_start(
    settings: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(**settings)


def test_an_unreadable_password_file_is_named(tmp_path: Path) -> None:
    settings = load_settings(
        **EXTERNAL,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_username="u",
        kafka_password_file=tmp_path / "missing",
    )
    with pytest.raises(ConfigError, match="SIGNALHUB_KAFKA_PASSWORD_FILE"):
        KafkaSecurity.from_settings(settings)


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    environ = {
        "SIGNALHUB_BOOTSTRAP_SERVER": "x",
        "SIGNALHUB_KAFKA_PASWORD_FILE": "x",
        "SIGNALHUB_NO_SUCH_SETTING": "1",
        "SIGNALHUB_STATE_DIR": "/tmp",
        "SIGNALHUB_INGEST_TOKEN_POLITIE": "t",
        "SIGNALHUB_SESSION_TTL_S": "60",
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == [
        "SIGNALHUB_BOOTSTRAP_SERVER (did you mean SIGNALHUB_BOOTSTRAP_SERVERS?)",
        "SIGNALHUB_KAFKA_PASWORD_FILE (did you mean SIGNALHUB_KAFKA_PASSWORD_FILE?)",
        "SIGNALHUB_NO_SUCH_SETTING",
    ]


def test_the_console_settings_are_known_names() -> None:
    console = {f"SIGNALHUB_{name.upper()}" for name in ConsoleSettings.model_fields}
    assert console <= OTHER_SETTING_NAMES


def test_an_unknown_variable_stops_a_command_with_its_name() -> None:
    env = environment_without_settings() | {"SIGNALHUB_NO_SUCH_SETTING": "1"}
    result, _ = run_signalhub(["status"], env)
    assert result.returncode != 0
    assert "SIGNALHUB_NO_SUCH_SETTING" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback


def test_every_setting_is_documented() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text("utf-8")
    names = {f"SIGNALHUB_{name.upper()}" for name in Settings.model_fields} | OTHER_SETTING_NAMES
    assert sorted(name for name in names if f"`{name}`" not in text) == []
