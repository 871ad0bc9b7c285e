"""The console's own audit log: logins that failed, policy publishes and rollbacks, DLQ replays.

The audit store (:mod:`signalhub.audit`) holds decision records only (its ``append`` takes
audit records keyed by ``decision_id``), so console events go to a separate append-only JSON
Lines file, ``<state_dir>/console/audit.jsonl`` (owner-only), each line hash-chained to the one
before it (``prev`` = SHA-256 of the previous line), so a removed or edited line is detectable
with :func:`verify`. Entries name users and actions, never a clear identifier of a citizen.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ConsoleAuditLog"]

_GENESIS = "0" * 64


class ConsoleAuditLog:
    """Append and read console events; appends are serialised within the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            prev = self._last_hash()
            entry = {
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "event": event,
                **fields,
                "prev": prev,
            }
            line = json.dumps(entry, sort_keys=True, ensure_ascii=False)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        return entry

    def entries(self, event: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        rows = [json.loads(line) for line in lines if line.strip()]
        return [row for row in rows if event is None or row.get("event") == event]

    def verify(self) -> list[int]:
        """Line numbers (1-based) whose ``prev`` does not match the line before; [] = intact."""
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        broken: list[int] = []
        prev = _GENESIS
        for number, line in enumerate(lines, 1):
            try:
                claimed = json.loads(line).get("prev")
            except ValueError:
                claimed = None
            if claimed != prev:
                broken.append(number)
            prev = hashlib.sha256(line.encode("utf-8")).hexdigest()
        return broken

    def _last_hash(self) -> str:
        try:
            with self.path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 65536))
                tail = handle.read().splitlines()
        except FileNotFoundError:
            return _GENESIS
        for line in reversed(tail):
            if line.strip():
                return hashlib.sha256(line).hexdigest()
        return _GENESIS
