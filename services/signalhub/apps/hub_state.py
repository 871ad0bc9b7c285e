"""What the supervisor of ``signalhub up`` knows, written where the HTTP role can read it.

The supervisor rewrites ``<state_dir>/hub.json`` every half second: each role's process, state
and restart count, whether the hub takes signals right now (and why not), and the broker
incidents it has seen. ``/readyz``, ``/metrics``, ``signalhub status`` and the ingest endpoint
read it (through :func:`supervised_hub_state`). A file older than :data:`STALE_S` means the
supervisor hangs; a file whose supervisor process is gone is a leftover and means nothing. Broker
incidents
are also appended to a file of their own (:mod:`signalhub.broker.incidents`).
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from signalhub.broker.incidents import BrokerIncident

__all__ = [
    "HUB_STATE_FILE",
    "STALE_S",
    "HubState",
    "RoleState",
    "read_hub_state",
    "supervised_hub_state",
    "write_hub_state",
]

HUB_STATE_FILE = "hub.json"
#: A hub state not rewritten for this long belongs to a supervisor that is gone.
STALE_S = 10.0

Phase = Literal["starting", "running", "restarting", "stopped", "failed"]


@dataclass
class RoleState:
    name: str
    phase: Phase = "starting"
    pid: int | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    since: float = field(default_factory=time.time)
    detail: str = ""

    @property
    def up(self) -> bool:
        return self.phase == "running"


@dataclass
class HubState:
    roles: list[RoleState]
    accepting: bool = False
    refusal: str = "the hub is starting"
    incidents: list[BrokerIncident] = field(default_factory=list)
    supervisor_pid: int = field(default_factory=os.getpid)
    updated_at: float = field(default_factory=time.time)

    def role(self, name: str) -> RoleState | None:
        return next((role for role in self.roles if role.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> HubState:
        return cls(
            roles=[RoleState(**role) for role in body["roles"]],
            accepting=bool(body["accepting"]),
            refusal=str(body["refusal"]),
            incidents=[BrokerIncident(**incident) for incident in body["incidents"]],
            supervisor_pid=int(body["supervisor_pid"]),
            updated_at=float(body["updated_at"]),
        )


def write_hub_state(state_dir: Path, state: HubState) -> None:
    """Atomically replace the hub state (readers never see half a file).

    On a full disk a new file cannot be written, and the hub state is what says so (a role
    exiting 74, ``/readyz`` 503 with the reason): it is then written over the old file in place,
    whose space is already the file's, padded with spaces (JSON allows them) to its old length.
    That is one small write, not atomic: a reader that catches it midway reads no state once.
    """
    state.updated_at = time.time()
    body = json.dumps(state.to_json()).encode("utf-8")
    path = state_dir / HUB_STATE_FILE
    temporary = path.with_suffix(".tmp")
    try:
        temporary.write_bytes(body)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno != errno.ENOSPC or not path.exists():
            raise
        with path.open("r+b") as existing:
            existing.write(body.ljust(path.stat().st_size))
        return
    temporary.replace(path)


def read_hub_state(state_dir: Path) -> HubState | None:
    """The supervisor's last word, or None when no supervisor wrote one (compose, tests)."""
    try:
        return HubState.from_json(json.loads((state_dir / HUB_STATE_FILE).read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def supervised_hub_state(state_dir: Path) -> HubState | None:
    """The hub state while its supervisor process lives; None without one.

    A hub state left behind by an ``up`` that has stopped must not make a later bare
    ``signalhub run http`` (or ``status``) report on roles that no longer exist.
    """
    state = read_hub_state(state_dir)
    if state is None or not _process_exists(state.supervisor_pid):
        return None
    return state


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True
