"""Settings, read once at start-up: environment over file over default, typed and frozen.

Every setting has the environment name ``SIGNALHUB_<NAME>`` (e.g. ``SIGNALHUB_BOOTSTRAP_SERVERS``).
Nothing here is read at import time: call :func:`load_settings` at the edge (CLI, tests).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signalhub.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "OTHER_SETTING_NAMES",
    "Settings",
    "load_settings",
    "project_root",
    "settings_env",
    "unknown_variables",
]

ENV_PREFIX = "SIGNALHUB_"
#: ``SIGNALHUB_*`` names read outside :class:`Settings`: the console's own settings
#: (:class:`signalhub.console.settings.ConsoleSettings`, kept equal by a test), the s3rver
#: binary override and docker-compose.yml's secrets folder.
OTHER_SETTING_NAMES = frozenset(
    {
        "SIGNALHUB_SESSION_TTL_S",
        "SIGNALHUB_LOGIN_MAX_FAILURES",
        "SIGNALHUB_LOGIN_WINDOW_S",
        "SIGNALHUB_SAMPLE_INTERVAL_S",
        "SIGNALHUB_HISTORY_MINUTES",
        "SIGNALHUB_S3RVER_BIN",
        "SIGNALHUB_SECRETS_DIR",
    }
)
#: Families of names: each connector's ingest token (its definition's ``token_env``).
_OTHER_SETTING_PREFIXES = ("SIGNALHUB_INGEST_TOKEN_",)


def project_root() -> Path:
    """The folder that holds ``schemas/``, ``policies/``, ``connectors/`` and ``config/``.

    ``SIGNALHUB_HOME`` overrides; otherwise the checkout this package was installed from
    (an editable install), falling back to the working directory.
    """
    here = Path(__file__).resolve().parents[2]
    return here if (here / "schemas").is_dir() else Path.cwd()


class Settings(BaseSettings):
    """Typed, frozen configuration of one hub process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(default_factory=project_root)
    #: Kafka bootstrap servers; empty means: start the embedded broker (tansu) on a free port.
    bootstrap_servers: str = ""
    #: Where the hub keeps its own state (SQLite stores, key file, broker scratch). Default:
    #: ``<home>/.signalhub``, not relative to the working directory, so that every command run
    #: from anywhere finds the hub that ``signalhub up`` started (its ``broker.address``).
    state_dir: Path = Field(
        default_factory=lambda data: Path(data.get("home") or project_root()) / ".signalhub"
    )
    #: Storage of the embedded broker. "memory" (the default) is fast and loses every topic,
    #: record and offset when the broker stops; ``signalhub up`` says so at every start.
    #: "durable" keeps them under ``<state_dir>/broker`` (tansu on a local S3-compatible store)
    #: across any restart, but tansu 0.6.0 slows down as a partition collects batches and stops
    #: answering fetches at about 1,000 (docs/operations.md), so it is not yet the default.
    broker_storage: Literal["durable", "memory"] = "memory"
    #: Loopback port of the embedded broker; 0 = a free port (``signalhub up`` picks one and
    #: keeps it across broker restarts, so every role reconnects to the same address).
    embedded_broker_port: int = Field(default=0, ge=0, le=65535)
    #: Master key for pseudonym key derivation. Unset: read from ``key_file``.
    master_key: SecretStr | None = None
    key_file: Path | None = None
    #: Plug-in key provider ``"package.module:factory"`` (factory(settings) -> KeyProvider),
    #: e.g. a KMS adapter; wins over ``master_key`` and ``key_file``. See signalhub.pseudonym.keys.
    key_provider: str | None = None
    #: AES-GCM key of the re-identification vault (owner-only file, 32 bytes hex), kept apart
    #: from the pseudonym keys. Unset: ``<state_dir>/vault.key``.
    vault_key_file: Path | None = None
    #: Block (and report on ``deliveries.blocked``) any delivery that carries a BSN-valid number
    #: or one of the signal's own identifiers the decision did not permit in clear.
    leak_guard: bool = True
    #: Officers who may approve re-identification requests, comma-separated (none: nobody can).
    reidentify_officers: str = ""
    #: Seconds a re-identification request and each approval stay valid.
    reidentify_ttl_s: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    #: Consumer fetch wait; tansu holds a fetch for this long even when data is there. 50 ms:
    #: at half load the enforcer's hand-over p99 was ~120-190 ms with it, ~360-490 ms with 100.
    fetch_max_wait_ms: int = Field(default=50, ge=10, le=5000)
    #: Group session timeout; tansu needs about half of it to join a group.
    session_timeout_ms: int = Field(default=6000, ge=6000, le=60000)
    #: Consumer group of the enforcer workers; workers in one group share the signal partitions.
    enforcer_group: str = "signalhub-enforcer"
    #: Partitions of each signal topic the hub creates: the most enforcer workers that share work.
    partitions: int = Field(default=2, ge=1, le=64)
    #: Largest signal record accepted, in bytes; larger ones go to the DLQ / rejects.
    max_record_bytes: int = Field(default=64 * 1024, ge=1024)
    #: Loopback port of the enforcer's metrics exporter; 0 = a free port, written to
    #: ``<state_dir>/enforcer-metrics.port`` (the console finds it there).
    enforcer_metrics_port: int = Field(default=0, ge=0, le=65535)
    #: Loopback address and port of the hub's HTTP service (ingest, pull API, console).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8730, ge=0, le=65535)
    # -- audit store and retention (docs/audit.md) ------------------------------------------
    #: Audit store: "" = SQLite at ``<state_dir>/audit.sqlite``; ``postgresql://...`` = PostgreSQL.
    audit_dsn: SecretStr = SecretStr("")
    #: Consumer group whose committed offsets say how far the audit store has ingested ``audit``.
    audit_group: str = "signalhub-audit-store"
    #: Days an audit record is kept (by decision time); retention entries themselves are kept.
    audit_retention_days: int = Field(default=1825, ge=1)
    #: Days raw signals stay on ``signals.*``, ``signals.dlq`` and ``signals.parked``.
    signal_retention_days: int = Field(default=30, ge=1)
    #: Days deliveries stay on ``deliveries.<subscriber>`` unless the subscription sets
    #: ``retention_days`` in config/subscriptions.toml.
    delivery_retention_days: int = Field(default=90, ge=1)
    #: Which policy engine decides: the in-process OPA engine, or an OPA server over REST.
    policy_engine: Literal["embedded", "server"] = "embedded"
    #: Base URL of the OPA server (``policy_engine = "server"``), e.g. ``http://opa:8181``.
    opa_url: str = "http://127.0.0.1:8181"
    #: Seconds an OPA server query may take before the decision fails closed (deny + park).
    opa_timeout_s: float = Field(default=2.0, gt=0, le=60)

    # -- bundling, hit/no-hit and wijkbeeld (docs/bundling.md) --------------------------------
    #: Consumer group whose committed offsets say how far the bundler has read ``signals.*``.
    bundler_group: str = "signalhub-bundler"
    #: Small-cell suppression of the wijkbeeld: a count below k is shown as ``<k``.
    wijkbeeld_k: int = Field(default=5, ge=2, le=100)
    #: Reports the public meldpunt form takes from one client address per hour; more get 429.
    meldpunt_reports_per_hour: int = Field(default=10, ge=1, le=10_000)

    # -- Kafka security, for an external Kafka (docs/deployment.md) ----------------------------
    #: How clients talk to the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: SASL mechanism (``SASL_*`` protocols). OAUTHBEARER needs a token provider, which a
    #: setting cannot carry: it is not offered.
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_username: str | None = None
    #: File holding the SASL password (one line), so that it never shows in argv or ``env``.
    kafka_password_file: Path | None = None
    #: CA bundle that signs the brokers' certificates; unset: the system's CAs.
    kafka_ssl_cafile: Path | None = None
    #: Client certificate and its key, for brokers that require mutual TLS.
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    #: Check that a broker's certificate names the host the client connected to.
    kafka_ssl_check_hostname: bool = True

    # -- connector plausibility (docs/connectors.md) -------------------------------------------
    #: Earliest observation date a connector accepts; an earlier one is rejected (a typo'd year).
    observed_not_before: date = date(1900, 1, 1)
    #: Seconds an observation may lie in the future (clock skew); a later one is rejected.
    observed_max_future_s: int = Field(default=86400, ge=0, le=30 * 24 * 3600)

    @model_validator(mode="after")
    def _kafka_security_is_whole(self) -> Settings:
        """Refuse a security setting that could only fail later, in every client."""
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol in ("SSL", "SASL_SSL")
        if protocol != "PLAINTEXT" and self.embedded:
            raise ValueError(
                f"{protocol} needs an external Kafka: the embedded broker listens in plaintext "
                "on loopback; set SIGNALHUB_BOOTSTRAP_SERVERS"
            )
        if sasl:
            missing = [
                f"SIGNALHUB_KAFKA_{name.upper()}"
                for name in ("sasl_mechanism", "username", "password_file")
                if getattr(self, f"kafka_{name}") is None
            ]
            if missing:
                raise ValueError(f"{protocol} needs {', '.join(missing)}")
        elif self.kafka_sasl_mechanism or self.kafka_username or self.kafka_password_file:
            raise ValueError(
                f"SASL settings are given but SIGNALHUB_KAFKA_SECURITY_PROTOCOL is {protocol}"
            )
        files = (self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        if not tls and any(files):
            raise ValueError(
                f"TLS files are given but SIGNALHUB_KAFKA_SECURITY_PROTOCOL is {protocol}"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "SIGNALHUB_KAFKA_SSL_CERTFILE and SIGNALHUB_KAFKA_SSL_KEYFILE go together"
            )
        return self

    @property
    def schemas_dir(self) -> Path:
        return self.home / "schemas"

    @property
    def policies_dir(self) -> Path:
        return self.home / "policies"

    @property
    def connectors_dir(self) -> Path:
        return self.home / "connectors"

    @property
    def subscriptions_file(self) -> Path:
        return self.home / "config" / "subscriptions.toml"

    @property
    def embedded(self) -> bool:
        """True when the hub starts its own broker instead of using ``bootstrap_servers``."""
        return not self.bootstrap_servers


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as the ``SIGNALHUB_*`` environment a child process reads them back from."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
        env[f"SIGNALHUB_{name.upper()}"] = text
    return env


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Each ``SIGNALHUB_*`` variable no setting reads, with the closest known name if any."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | OTHER_SETTING_NAMES
    # Compared without the prefix, which every name shares.
    suffixes = [name.removeprefix(ENV_PREFIX) for name in known]
    found = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        if name.startswith(_OTHER_SETTING_PREFIXES):
            continue
        closest = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1)
        found.append(f"{name} (did you mean {ENV_PREFIX}{closest[0]}?)" if closest else name)
    return found


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; a missing, invalid or unknown value fails here with its name.

    An unknown ``SIGNALHUB_*`` variable is refused rather than ignored: a misspelt setting
    would otherwise leave its default in force without a word.
    """
    unknown = unknown_variables(os.environ)
    if unknown:
        raise ConfigError(
            f"unknown setting {', '.join(unknown)} — no signalhub setting has that name; "
            "fix or unset it (docs/settings.md lists the settings)"
        )
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(
            f"invalid configuration — {problems} — fix the setting and retry"
        ) from exc


def _problem(error: Mapping[str, object]) -> str:
    location = error["loc"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not isinstance(location, tuple) or not location:  # a rule across several settings
        return message
    return f"{ENV_PREFIX}{'_'.join(str(part) for part in location).upper()}: {message}"
