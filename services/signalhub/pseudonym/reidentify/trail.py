"""The re-identification trail: every step of the workflow, hash-chained on the ledger.

Events go to the ``reid_audit`` table of the vault file. Each row's hash covers the previous
row's hash and its own content (:mod:`signalhub.ledger`), so a deleted or edited event is
detectable with :meth:`Trail.verify`. The identity itself is never in the trail.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from signalhub.ledger import GENESIS, Chain, Entry, link

__all__ = ["AuditEvent", "Trail"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reid_audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    event      TEXT NOT NULL,
    request_id TEXT,
    actor      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: str
    event: str
    request_id: str | None
    actor: str
    detail: dict[str, object]


class Trail:
    """The trail in one vault file; ``now`` stamps an event (the workflow's clock, as text)."""

    def __init__(self, db: sqlite3.Connection, now: Callable[[], str]) -> None:
        self._db = db
        self._now = now
        self._db.executescript(_SCHEMA)

    def append(
        self, event: str, request_id: str | None, actor: str, detail: dict[str, object]
    ) -> None:
        """Append one event after the last one.

        Only inside a ``BEGIN IMMEDIATE`` transaction: it reads the last hash and inserts under
        one write lock, so two writers queue instead of forking the chain.
        """
        row = self._db.execute("SELECT hash FROM reid_audit ORDER BY seq DESC LIMIT 1").fetchone()
        previous = row[0] if row else GENESIS
        at = self._now()
        body = json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)
        entry = link(previous, _material(previous, at, event, request_id, actor, body))
        self._db.execute(
            "INSERT INTO reid_audit (at, event, request_id, actor, detail, prev_hash, hash) "
            "VALUES (?,?,?,?,?,?,?)",
            (at, event, request_id, actor, body, previous, entry.hash),
        )

    def events(self, request_id: str | None = None) -> list[AuditEvent]:
        """The events of one request, or all, oldest first."""
        rows = self._db.execute(
            "SELECT seq, at, event, request_id, actor, detail FROM reid_audit "
            "WHERE ? IS NULL OR request_id = ? ORDER BY seq",
            (request_id, request_id),
        ).fetchall()
        return [AuditEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def verify(self) -> list[int]:
        """Sequence numbers of the rows where the chain breaks; empty means intact."""
        rows = self._db.execute(
            "SELECT seq, at, event, request_id, actor, detail, prev_hash, hash "
            "FROM reid_audit ORDER BY seq"
        ).fetchall()
        entries = [
            Entry(prev_hash, digest, _material(prev_hash, at, event, rid, actor, detail))
            for _, at, event, rid, actor, detail, prev_hash, digest in rows
        ]
        return sorted({rows[broken.index][0] for broken in Chain(entries).breaks()})


def _material(
    previous: str, at: str, event: str, request_id: str | None, actor: str, detail: str
) -> bytes:
    """What a row's hash covers: its fields after the previous hash, NUL-separated.

    ``detail`` is hashed as stored text, so its JSON spelling may change without breaking
    the rows already written.
    """
    return "\0".join([previous, at, event, request_id or "", actor, detail]).encode("utf-8")
