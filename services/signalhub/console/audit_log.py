"""The console's own audit log: logins that failed, policy publishes and rollbacks, DLQ replays.

The audit store (:mod:`signalhub.audit`) holds decision records only (its ``append`` takes
audit records keyed by ``decision_id``), so console events go to a separate append-only JSON
Lines file, ``<state_dir>/console/audit.jsonl`` (owner-only), each line hash-chained to the one
before it on the ledger (:mod:`signalhub.ledger`): ``prev`` is the hash of the previous line's
bytes as stored, so a removed or edited line is detectable with :func:`verify`. Entries name
users and actions, never a clear identifier of a citizen.

Lines end with ``\n`` only: a user name may hold U+2028 or another character that Python's
``str.splitlines`` also breaks on, and the file is split on bytes so such a line stays one entry.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signalhub.ledger import GENESIS, Chain, Entry, entry_hash, link

__all__ = ["ConsoleAuditLog"]


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
            # The line format predates the ledger and stays as it is: the hash covers the
            # stored bytes, so every line ever written keeps verifying.
            line = json.dumps(entry, sort_keys=True, ensure_ascii=False).encode("utf-8")
            link(prev, line)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, "ab") as handle:
                handle.write(line + b"\n")
        return entry

    def entries(self, event: str | None = None) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in self._lines() if line.strip()]
        return [row for row in rows if event is None or row.get("event") == event]

    def verify(self) -> list[int]:
        """Line numbers (1-based) where the chain breaks; [] = intact.

        A line that was edited is found at the line after it (the hash it recorded is gone),
        a removed line at the line that followed it, an extra line at itself.
        """
        lines = self._lines()
        chain = Chain([_entry(line) for line in lines])
        return sorted({broken.index + 1 for broken in chain.breaks()})

    def _lines(self) -> list[bytes]:
        """Every line as stored (a blank one too: verification counts it as a break)."""
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = content.split(b"\n")
        return lines[:-1] if lines and not lines[-1] else lines

    def _last_hash(self) -> str:
        try:
            with self.path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 65536))
                tail = handle.read().split(b"\n")
        except FileNotFoundError:
            return GENESIS
        for line in reversed(tail):
            if line.strip():
                return entry_hash(line)
        return GENESIS


def _entry(line: bytes) -> Entry:
    """A line on the ledger: its hash is derived from its bytes, its link is its ``prev``."""
    try:
        claimed = json.loads(line).get("prev")
    except (ValueError, AttributeError):
        claimed = None
    return Entry(claimed if isinstance(claimed, str) else "", entry_hash(line), line)
