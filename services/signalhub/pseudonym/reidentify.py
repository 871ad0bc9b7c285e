"""Break-glass re-identification: the identity behind one pseudonym, revealed once, audited.

The flow (each step is a plain function of :class:`Reidentification`, for the CLI now and the
web console later; every step, allowed or refused, appends an audit event):

1. **request** — a subscriber's employee asks for the identity behind one pseudonym it received,
   with a reason and a case reference. The pseudonym must be in the vault under one of the
   subscriber's own pseudonym domains (its name, or a shared domain an agreement puts it in):
   a pseudonym of another domain is refused.
2. **approve** / **refuse** — two *different* authorised officers
   (``SIGNALHUB_REIDENTIFY_OFFICERS``) must approve; the requester can never approve their
   own request; one refusal ends it.
3. **reveal** — once two unexpired approvals are in, the identity is shown once, to the
   requesting subscriber and employee only; the request is then closed.

A request and each approval expire after ``SIGNALHUB_REIDENTIFY_TTL_S``; an expired request
cannot be approved or revealed (the expiry is audited when it is noticed).

Audit: events go to the ``reid_audit`` table of the vault file, hash-chained (each row's hash
covers the previous row's hash and its own content), so a deleted or edited event is detectable
with :meth:`Reidentification.verify_audit`. The identity itself is never audited or logged.
Each step's state change and its event commit together in one ``BEGIN IMMEDIATE`` transaction,
which also reads the previous hash: two writers at once (two CLI runs, the console and the CLI)
queue for the write lock instead of forking the chain. A state change applies only to a request
that is still open when the transaction holds the lock, so a refusal and a reveal racing each
other cannot both succeed: the later one is undone and audited as refused.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from signalhub.config import Settings
from signalhub.errors import ReidentificationError
from signalhub.pseudonym.vault import Vault

__all__ = [
    "APPROVALS_NEEDED",
    "AuditEvent",
    "ReidRequest",
    "Reidentification",
    "open_reidentification",
    "subscriber_domains",
]

APPROVALS_NEEDED = 2
_GENESIS = "0" * 64
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


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: str
    event: str
    request_id: str | None
    actor: str
    detail: dict[str, object]


def subscriber_domains(policies_dir: Path) -> Callable[[str], frozenset[str]]:
    """A subscriber's pseudonym domains: its name plus every ``domain`` an agreement gives it."""
    path = policies_dir / "data" / "agreements.json"
    agreements = json.loads(path.read_text("utf-8")) if path.exists() else {}

    def domains_of(subscriber: str) -> frozenset[str]:
        found = {subscriber}
        for key, agreement in agreements.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[1] == subscriber and isinstance(agreement, dict):
                found.add(str(agreement.get("domain", subscriber)))
        return frozenset(found)

    return domains_of


class _ClosedMeanwhileError(Exception):
    """A request checked as open was closed by another process before this step's write."""


class Reidentification:
    """The re-identification workflow over one vault (its requests and audit live beside it)."""

    def __init__(
        self,
        vault: Vault,
        officers: frozenset[str],
        domains_of: Callable[[str], frozenset[str]],
        ttl: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._vault = vault
        self._db = vault.db
        self._db.executescript(_SCHEMA)
        self._officers = officers
        self._domains_of = domains_of
        self._ttl = ttl
        self._clock = clock

    # -- the steps ---------------------------------------------------------------------------

    def request(
        self, subscriber: str, requested_by: str, pseudonym: str, reason: str, case_ref: str
    ) -> ReidRequest:
        """File a request; refused (and audited) unless the pseudonym is in one of its domains."""
        who = f"{requested_by}@{subscriber}"
        detail: dict[str, object] = {"pseudonym": pseudonym, "case_ref": case_ref}
        if not reason.strip() or not case_ref.strip() or not requested_by.strip():
            self._refuse_step(
                "request_refused",
                None,
                who,
                detail,
                "a reason, a case reference and the requester's name are required",
            )
        domain = next(
            (
                d
                for d in sorted(self._domains_of(subscriber))
                if self._vault.entry(d, pseudonym) is not None
            ),
            None,
        )
        if domain is None:
            self._refuse_step(
                "request_refused",
                None,
                who,
                detail,
                f"{pseudonym} is not a pseudonym the hub issued in a domain of {subscriber}",
            )
        now = self._clock()
        request = ReidRequest(
            str(uuid.uuid4()),
            subscriber,
            requested_by,
            str(domain),
            pseudonym,
            reason,
            case_ref,
            now,
            now + self._ttl,
            "pending",
        )
        with self._write():
            self._db.execute(
                "INSERT INTO reid_requests VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    request.request_id,
                    subscriber,
                    requested_by,
                    request.domain,
                    pseudonym,
                    reason,
                    case_ref,
                    _iso(now),
                    _iso(request.expires_at),
                    "pending",
                ),
            )
            self._audit(
                "requested",
                request.request_id,
                who,
                {**detail, "domain": request.domain, "reason": reason},
            )
        return request

    def approve(self, request_id: str, officer: str) -> ReidRequest:
        """One officer's approval; the second different officer's makes the request approved."""
        request = self._open_request(request_id, officer, "approval_refused")
        if officer not in self._officers:
            self._refuse_step(
                "approval_refused",
                request_id,
                officer,
                {},
                f"{officer} is not an authorised re-identification officer",
            )
        if officer == request.requested_by:
            self._refuse_step(
                "approval_refused",
                request_id,
                officer,
                {},
                "the requester cannot approve their own request",
            )
        if officer in self._valid_approvals(request_id):
            self._refuse_step(
                "approval_refused",
                request_id,
                officer,
                {},
                f"{officer} already approved; a second, different officer must",
            )
        now = self._clock()
        with self._write(if_closed=("approval_refused", request_id, officer)):
            self._db.execute(
                "INSERT OR REPLACE INTO reid_approvals VALUES (?,?,?,?)",
                (request_id, officer, _iso(now), _iso(now + self._ttl)),
            )
            approvals = self._valid_approvals(request_id)
            state = "approved" if len(approvals) >= APPROVALS_NEEDED else "pending"
            self._set_state(request_id, state)
            self._audit("approved", request_id, officer, {"approvals": len(approvals)})
        return self.get(request_id)

    def refuse(self, request_id: str, officer: str, reason: str) -> ReidRequest:
        """An authorised officer refuses: the request is closed for good."""
        self._open_request(request_id, officer, "refusal_refused")
        if officer not in self._officers:
            self._refuse_step(
                "refusal_refused",
                request_id,
                officer,
                {},
                f"{officer} is not an authorised re-identification officer",
            )
        with self._write(if_closed=("refusal_refused", request_id, officer)):
            self._set_state(request_id, "refused")
            self._audit("refused", request_id, officer, {"reason": reason})
        return self.get(request_id)

    def reveal(self, request_id: str, subscriber: str, requested_by: str) -> str:
        """The identity, once, to the requester, after two unexpired approvals; then closed."""
        who = f"{requested_by}@{subscriber}"
        request = self._open_request(request_id, who, "reveal_refused")
        if (subscriber, requested_by) != (request.subscriber, request.requested_by):
            self._refuse_step(
                "reveal_refused", request_id, who, {}, "only the requester can receive the identity"
            )
        approvals = self._valid_approvals(request_id)
        if len(approvals) < APPROVALS_NEEDED:
            expired = len(request.approvals) >= APPROVALS_NEEDED
            if expired:  # it had its approvals, but they ran out
                with self._write(if_closed=("reveal_refused", request_id, who)):
                    self._set_state(request_id, "expired")
                    self._audit("expired", request_id, "signalhub", {"what": "approvals"})
            self._refuse_step(
                "reveal_refused",
                request_id,
                who,
                {"approvals": len(approvals)},
                "an approval has expired"
                if expired
                else f"{APPROVALS_NEEDED} approvals by different officers are needed, "
                f"{len(approvals)} given",
            )
        if request.domain not in self._domains_of(subscriber):
            self._refuse_step(
                "reveal_refused",
                request_id,
                who,
                {},
                "the pseudonym is not of the requester's domain",
            )
        identity = self._vault.identifier(request.domain, request.pseudonym)
        with self._write(if_closed=("reveal_refused", request_id, who)):
            self._set_state(request_id, "revealed")
            self._audit(
                "revealed",
                request_id,
                who,
                {
                    "domain": request.domain,
                    "pseudonym": request.pseudonym,
                    "approved_by": sorted(approvals),
                },
            )
        return identity

    # -- reading -----------------------------------------------------------------------------

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

    def list_requests(self, state: str | None = None) -> list[ReidRequest]:
        ids = [
            rid
            for (rid,) in self._db.execute(
                "SELECT request_id FROM reid_requests WHERE ? IS NULL OR state = ? "
                "ORDER BY requested_at",
                (state, state),
            )
        ]
        return [self.get(rid) for rid in ids]

    def audit_trail(self, request_id: str | None = None) -> list[AuditEvent]:
        rows = self._db.execute(
            "SELECT seq, at, event, request_id, actor, detail FROM reid_audit "
            "WHERE ? IS NULL OR request_id = ? ORDER BY seq",
            (request_id, request_id),
        ).fetchall()
        return [AuditEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def verify_audit(self) -> list[int]:
        """Sequence numbers of audit rows whose hash chain is broken; empty means intact."""
        broken: list[int] = []
        previous = _GENESIS
        for seq, at, event, rid, actor, detail, prev_hash, digest in self._db.execute(
            "SELECT seq, at, event, request_id, actor, detail, prev_hash, hash "
            "FROM reid_audit ORDER BY seq"
        ):
            if prev_hash != previous or digest != _chain(prev_hash, at, event, rid, actor, detail):
                broken.append(seq)
            previous = digest
        return broken

    # -- helpers -----------------------------------------------------------------------------

    def _open_request(self, request_id: str, actor: str, refused_event: str) -> ReidRequest:
        """The request if it is still open; an expired one is marked and audited as expired."""
        try:
            request = self.get(request_id)
        except ReidentificationError:
            self._refuse_step(refused_event, request_id, actor, {}, "no such request")
        if request.state in ("pending", "approved") and self._clock() > request.expires_at:
            with self._write(if_closed=(refused_event, request_id, actor)):
                self._set_state(request_id, "expired")
                self._audit("expired", request_id, "signalhub", {"what": "request"})
            request = self.get(request_id)
        if request.state not in ("pending", "approved"):
            self._refuse_step(
                refused_event,
                request_id,
                actor,
                {"state": request.state},
                f"the request is {request.state}",
            )
        return request

    def _valid_approvals(self, request_id: str) -> set[str]:
        now = _iso(self._clock())
        return {
            officer
            for (officer,) in self._db.execute(
                "SELECT officer FROM reid_approvals WHERE request_id = ? AND expires_at >= ?",
                (request_id, now),
            )
        }

    def _set_state(self, request_id: str, state: str) -> None:
        """Move a still open request to ``state``; :class:`_ClosedMeanwhileError` if it is not.

        The caller checked that it was open before its transaction; another process may have
        closed it since, and only this check runs under the write lock."""
        changed = self._db.execute(
            "UPDATE reid_requests SET state = ? "
            "WHERE request_id = ? AND state IN ('pending', 'approved')",
            (state, request_id),
        ).rowcount
        if changed != 1:
            raise _ClosedMeanwhileError(request_id)

    @contextmanager
    def _write(self, *, if_closed: tuple[str, str, str] | None = None) -> Iterator[None]:
        """One write transaction: all of the block is committed, or none of it.

        The vault connection is in autocommit mode (``isolation_level=None``), where
        ``with self._db`` opens no transaction. IMMEDIATE takes the write lock up front, so the
        last audit hash read inside the block is still the last one when the block inserts.
        ``if_closed`` is (refused event, request id, actor): when another process closed the
        request after the caller's checks, the block is undone and that refusal audited."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:  # a failed COMMIT may already have rolled back
                self._db.execute("ROLLBACK")
            if isinstance(exc, _ClosedMeanwhileError) and if_closed is not None:
                event, request_id, actor = if_closed
                why = "the request was closed by another step meanwhile"
                self._refuse_step(event, request_id, actor, {}, why)
            raise

    def _refuse_step(
        self,
        event: str,
        request_id: str | None,
        actor: str,
        detail: dict[str, object],
        why: str,
    ) -> NoReturn:
        with self._write():
            self._audit(event, request_id, actor, {**detail, "why": why})
        raise ReidentificationError(why)

    def _audit(
        self, event: str, request_id: str | None, actor: str, detail: dict[str, object]
    ) -> None:
        """Append one hash-chained event; only inside :meth:`_write`, which reads the last hash
        and inserts under one write lock."""
        row = self._db.execute("SELECT hash FROM reid_audit ORDER BY seq DESC LIMIT 1").fetchone()
        previous = row[0] if row else _GENESIS
        at = _iso(self._clock())
        body = json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)
        self._db.execute(
            "INSERT INTO reid_audit (at, event, request_id, actor, detail, prev_hash, hash) "
            "VALUES (?,?,?,?,?,?,?)",
            (
                at,
                event,
                request_id,
                actor,
                body,
                previous,
                _chain(previous, at, event, request_id, actor, body),
            ),
        )


def _chain(
    previous: str, at: str, event: str, request_id: str | None, actor: str, detail: str
) -> str:
    text = "\0".join([previous, at, event, request_id or "", actor, detail])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def open_reidentification(settings: Settings, vault: Vault | None = None) -> Reidentification:
    """The workflow configured from the settings (officers, expiry, the subscribers' domains)."""
    officers = frozenset(
        name.strip() for name in settings.reidentify_officers.split(",") if name.strip()
    )
    return Reidentification(
        vault or Vault.open(settings),
        officers,
        subscriber_domains(settings.policies_dir),
        timedelta(seconds=settings.reidentify_ttl_s),
    )
