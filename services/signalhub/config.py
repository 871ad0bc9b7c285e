"""Settings, read once at start-up: environment over file over default, typed and frozen.

Every setting has the environment name ``SIGNALHUB_<NAME>`` (e.g. ``SIGNALHUB_BOOTSTRAP_SERVERS``).
Nothing here is read at import time: call :func:`load_settings` at the edge (CLI, tests).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from signalhub.errors import ConfigError

__all__ = ["Settings", "load_settings", "project_root"]


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
    #: Where the hub keeps its own state (SQLite stores, key file, broker scratch).
    state_dir: Path = Path(".signalhub")
    #: Master key for pseudonym key derivation. Unset: read from ``key_file``.
    master_key: SecretStr | None = None
    key_file: Path | None = None
    #: Consumer fetch wait; tansu holds a fetch for this long even when data is there.
    fetch_max_wait_ms: int = Field(default=100, ge=10, le=5000)
    #: Group session timeout; tansu needs about half of it to join a group.
    session_timeout_ms: int = Field(default=6000, ge=6000, le=60000)
    #: Consumer group of the enforcer workers; workers in one group share the signal partitions.
    enforcer_group: str = "signalhub-enforcer"
    #: Partitions of each signal topic the hub creates: the most enforcer workers that share work.
    partitions: int = Field(default=2, ge=1, le=64)
    #: Largest signal record accepted, in bytes; larger ones go to the DLQ / rejects.
    max_record_bytes: int = Field(default=64 * 1024, ge=1024)
    #: Loopback address and port of the hub's HTTP service (ingest, pull API, console).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8730, ge=0, le=65535)

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
