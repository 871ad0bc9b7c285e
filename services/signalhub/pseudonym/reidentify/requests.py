"""Re-identification requests and their approvals, as kept in the vault file.

Plain storage for :mod:`~signalhub.pseudonym.reidentify.workflow`, which decides who may do
what; every write here belongs inside the workflow's write transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from signalhub.errors import ReidentificationError

__all__ = ["OPEN_STATES", "ClosedMeanwhileError", "ReidRequest", "RequestStore", "iso"]

#: States in which a request can still be approved, refused or revealed.
OPEN_STATES = ("pending", "approved")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reid_requests (
    request_id   TEXT PRIMARY KEY,
    subscriber   TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    domain       TEXT NOT NULL,
    pseudonym    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    case_ref     TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    state        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reid_approvals (
    request_id  TEXT NOT NULL,
    officer     TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (request_id, officer)
);
"""


@dataclass(frozen=True)
class ReidRequest:
    """A re-identification request as stored (never the identity)."""

    request_id: str
    subscriber: str
    requested_by: str
    domain: str
    pseudonym: str
    reason: str
    case_ref: str
    requested_at: datetime
    expires_at: datetime
    state: str  # pending | approved | refused | expired | revealed
    approvals: tuple[str, ...] = ()


class ClosedMeanwhileError(Exception):
    """A request checked as open was closed by another process before this step's write."""


def iso(moment: datetime) -> str:
    """The one spelling of a time in the vault file: UTC, microseconds (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class RequestStore:
    """The ``reid_requests`` and ``reid_approvals`` tables of one vault file."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._db.executescript(_SCHEMA)

    def add(self, request: ReidRequest) -> None:
        self._db.execute(
            "INSERT INTO reid_requests VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                request.request_id,
                request.subscriber,
                request.requested_by,
                request.domain,
                request.pseudonym,
                request.reason,
                request.case_ref,
                iso(request.requested_at),
                iso(request.expires_at),
                request.state,
            ),
        )

    def get(self, request_id: str) -> ReidRequest:
        row = self._db.execute(
            "SELECT * FROM reid_requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        if row is None:
            raise ReidentificationError(f"no re-identification request {request_id}")
        approvals = tuple(
            officer
            for (officer,) in self._db.execute(
                "SELECT officer FROM reid_approvals WHERE request_id = ? ORDER BY approved_at",
                (request_id,),
            )
        )
        return ReidRequest(
            request_id=row[0],
            subscriber=row[1],
            requested_by=row[2],
            domain=row[3],
            pseudonym=row[4],
            reason=row[5],
            case_ref=row[6],
            requested_at=datetime.fromisoformat(row[7]),
            expires_at=datetime.fromisoformat(row[8]),
            state=row[9],
            approvals=approvals,
        )

    def ids(self, state: str | None = None) -> list[str]:
        """Request ids in one state (or all), oldest first."""
        return [
            rid
            for (rid,) in self._db.execute(
                "SELECT request_id FROM reid_requests WHERE ? IS NULL OR state = ? "
                "ORDER BY requested_at",
                (state, state),
            )
        ]

    def approve(self, request_id: str, officer: str, at: datetime, expires_at: datetime) -> None:
        """Record one officer's approval (a renewed one replaces the expired one)."""
        self._db.execute(
            "INSERT OR REPLACE INTO reid_approvals VALUES (?,?,?,?)",
            (request_id, officer, iso(at), iso(expires_at)),
        )

    def valid_approvals(self, request_id: str, now: datetime) -> set[str]:
        """The officers whose approval of the request has not expired at ``now``."""
        return {
            officer
            for (officer,) in self._db.execute(
                "SELECT officer FROM reid_approvals WHERE request_id = ? AND expires_at >= ?",
                (request_id, iso(now)),
            )
        }

    def set_state(self, request_id: str, state: str) -> None:
        """Move a still open request to ``state``; :class:`ClosedMeanwhileError` if it is not.

        The caller checked that it was open before its transaction; another process may have
        closed it since, and only this check runs under the write lock.
        """
        changed = self._db.execute(
            "UPDATE reid_requests SET state = ? "
            "WHERE request_id = ? AND state IN ('pending', 'approved')",
            (state, request_id),
        ).rowcount
        if changed != 1:
            raise ClosedMeanwhileError(request_id)
