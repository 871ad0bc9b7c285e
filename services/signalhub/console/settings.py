"""The console's own settings (``SIGNALHUB_*`` environment, typed, frozen, read at the edge).

Kept beside the console rather than in :mod:`signalhub.config` so the console can be added
without touching the shared settings; they use the same prefix and rules.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConsoleSettings"]


class ConsoleSettings(BaseSettings):
    """Sessions, login throttling and the throughput sampler."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNALHUB_", env_file=".env", extra="ignore", frozen=True
    )

    #: Seconds a console session lasts after login (then the user logs in again).
    session_ttl_s: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)
    #: Failed logins per user and address within ``login_window_s`` before logins are refused.
    login_max_failures: int = Field(default=5, ge=1, le=100)
    #: Window (and lock-out) of the failed-login limit, in seconds.
    login_window_s: int = Field(default=900, ge=10, le=86400)
    #: Seconds between throughput samples for the dashboard chart (and lag reads).
    sample_interval_s: float = Field(default=2.0, ge=0.2, le=60)
    #: Minutes of throughput history the chart shows.
    history_minutes: int = Field(default=15, ge=1, le=240)
