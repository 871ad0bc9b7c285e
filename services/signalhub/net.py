"""The check every role that serves HTTP makes before it starts anything.

Kept apart from the roles (:mod:`signalhub.apps.serve`, ``signalhub console serve``) so that
both can ask it without importing each other.
"""

from __future__ import annotations

import socket

from signalhub.errors import ConfigError

__all__ = ["check_port_free"]


def check_port_free(host: str, port: int) -> None:
    """Fail before anything starts when the HTTP port is taken (uvicorn would fail after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: connections of a previous run in TIME_WAIT do not make it "taken"
        # (a restarted HTTP role must get its port back at once); a live listener still does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror} — stop what uses it or set "
                "SIGNALHUB_HTTP_PORT to a free port"
            ) from exc
