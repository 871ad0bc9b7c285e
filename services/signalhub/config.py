"""Settings, read once at start-up: environment over file over default, typed and frozen.

Every setting has the environment name ``SIGNALHUB_<NAME>`` (e.g. ``SIGNALHUB_BOOTSTRAP_SERVERS``).
Nothing here is read at import time: call :func:`load_settings` at the edge (CLI, tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from signalhub.errors import ConfigError

__all__ = ["Settings", "load_settings", "project_root", "settings_env"]


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
        env_prefix="SIGNALHUB_", env_file=".env", extra="ignore", frozen=True
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


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; a missing or invalid value fails here with its name."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"SIGNALHUB_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"invalid configuration — {problems} — fix the setting and retry"
        ) from exc
