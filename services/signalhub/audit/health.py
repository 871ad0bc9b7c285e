"""Is audit ingest keeping up, and can the audit store take a write? Answers for readiness.

Three questions, each answered from outside the ingest process so that ``/readyz`` and
``signalhub status`` can ask them wherever they run:

* :func:`audit_ingest_status` — what the ingest role last said about itself, read from the status
  file it rewrites (atomically) after every batch and every change of state;
* :func:`audit_store_writable` — a real, cheap write probe of the store (rolled back);
* :func:`audit_ingest_lag` — records on the ``audit`` topic that the audit group has not yet
  committed, counted by reading them from the committed offset on (end offsets are not trusted:
  tansu under-reports them).

The status file ``<state_dir>/audit-ingest.status.json`` holds::

    {"state": "ingesting" | "store_unreachable" | "broker_unreachable", "detail": str,
     "updated_at": epoch s, "ingested_offset": {"audit[0]": N}, "store_writable": bool,
     "pid": int}

where ``N`` is the next offset to ingest (the group's committed offset) and ``pid`` the process
that wrote it: a status left by a process the supervisor has since replaced says nothing about
the new one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from kafka.errors import KafkaError

from signalhub.audit.backends import store_target
from signalhub.broker.reader import assign_topics, drain, open_consumer
from signalhub.config import Settings
from signalhub.errors import BrokerError
from signalhub.wire import AUDIT_TOPIC

__all__ = [
    "BROKER_UNREACHABLE",
    "INGESTING",
    "STATUS_FILE",
    "STORE_UNREACHABLE",
    "IngestStatus",
    "audit_ingest_lag",
    "audit_ingest_status",
    "audit_store_writable",
]

logger = logging.getLogger(__name__)

STATUS_FILE = "audit-ingest.status.json"
INGESTING = "ingesting"
STORE_UNREACHABLE = "store_unreachable"
BROKER_UNREACHABLE = "broker_unreachable"

#: Seconds a writability probe may take (connection and statement).
PROBE_TIMEOUT_S = 2
#: Records counted per lag question at most: beyond that "at least this many" is answer enough.
LAG_LIMIT = 100_000


@dataclass
class IngestStatus:
    """The ingest role's view of itself, written to :data:`STATUS_FILE` on every change."""

    state_dir: Path
    state: str = INGESTING
    detail: str = "starting"
    ingested_offset: dict[str, int] = field(default_factory=dict)
    store_writable: bool = False
    _write_failed: bool = False

    def update(self, state: str, detail: str, *, store_writable: bool | None = None) -> None:
        self.state, self.detail = state, detail
        if store_writable is not None:
            self.store_writable = store_writable
        self.write()

    def write(self) -> None:
        """Replace the file atomically (temp file + rename): a reader never sees half of it.

        A failed write (disk full) is logged once and does not stop ingest: readers then see an
        old ``updated_at``, which is itself the signal.
        """
        body = {
            "state": self.state,
            "detail": self.detail,
            "updated_at": time.time(),
            "ingested_offset": dict(self.ingested_offset),
            "store_writable": self.store_writable,
            "pid": os.getpid(),
        }
        temp: str | None = None
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.state_dir, prefix=".audit-ingest.", suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                json.dump(body, handle)
            os.replace(temp, self.state_dir / STATUS_FILE)
        except OSError as exc:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            if not self._write_failed:
                logger.warning("cannot write the audit ingest status file: %s", exc)
            self._write_failed = True
            return
        self._write_failed = False


def audit_ingest_status(settings: Settings) -> dict[str, Any] | None:
    """The ingest role's last status (see the module docstring); None when absent or unreadable."""
    try:
        body = json.loads((settings.state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def audit_store_writable(settings: Settings) -> tuple[bool, str]:
    """Whether the store accepts a write transaction now (opened, then rolled back), and why."""
    target = store_target(settings)
    if target.sqlite_path is not None:
        return _sqlite_writable(target.sqlite_path)
    return _postgres_writable(target.dsn)


def _sqlite_writable(path: Path) -> tuple[bool, str]:
    if not path.exists():
        return False, f"no audit store at {path} yet (audit ingest creates it)"
    try:
        connection = sqlite3.connect(
            f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=PROBE_TIMEOUT_S
        )
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return False, f"audit store {path} takes no write: {exc}"
    return True, f"SQLite at {path} accepts writes"


def _postgres_writable(dsn: str) -> tuple[bool, str]:
    try:
        with psycopg.connect(dsn, connect_timeout=PROBE_TIMEOUT_S) as connection:
            connection.execute("SET TRANSACTION READ WRITE")
            connection.execute(f"SET LOCAL statement_timeout = {PROBE_TIMEOUT_S * 1000}")
            connection.execute("SELECT 1")
            connection.rollback()
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, f"audit store database takes no write: {type(exc).__name__}: {detail}"
    return True, "PostgreSQL accepts writes"


def audit_ingest_lag(settings: Settings, bootstrap_servers: str) -> int | None:
    """Records on the ``audit`` topic the audit group has not committed; None if unreachable.

    Counted by reading from the group's committed offsets until the topic stays idle (at most
    :data:`LAG_LIMIT`), without joining the group or committing anything.
    """
    try:
        consumer = open_consumer(
            bootstrap_servers,
            group_id=settings.audit_group,
            client_id="signalhub-audit-lag",
            bootstrap_timeout_ms=PROBE_TIMEOUT_S * 1000,
        )
    except BrokerError:
        return None
    try:
        assigned = assign_topics(
            consumer, [AUDIT_TOPIC], from_committed=True, timeout_ms=PROBE_TIMEOUT_S * 1000
        )
        if not assigned:
            return 0
        return sum(1 for _ in drain(consumer, idle_ms=300, max_records=LAG_LIMIT))
    except KafkaError:
        return None
    finally:
        consumer.close(autocommit=False)
