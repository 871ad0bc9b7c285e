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

Audit: events go to the hash-chained trail in the vault file
(:mod:`~signalhub.pseudonym.reidentify.trail`), checked with
:meth:`Reidentification.verify_audit`; requests and approvals are kept beside it
(:mod:`~signalhub.pseudonym.reidentify.requests`). The identity itself is never audited or logged.
Each step's state change and its event commit together in one ``BEGIN IMMEDIATE`` transaction,
which also reads the previous hash: two writers at once (two CLI runs, the console and the CLI)
queue for the write lock instead of forking the chain. A state change applies only to a request
that is still open when the transaction holds the lock, so a refusal and a reveal racing each
other cannot both succeed: the later one is undone and audited as refused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from signalhub.config import Settings
from signalhub.errors import ReidentificationError
from signalhub.pseudonym.reidentify.requests import (
    OPEN_STATES,
    ClosedMeanwhileError,
    ReidRequest,
    RequestStore,
    iso,
)
from signalhub.pseudonym.reidentify.trail import AuditEvent, Trail
from signalhub.pseudonym.vault import Vault

__all__ = [
    "APPROVALS_NEEDED",
    "Reidentification",
    "open_reidentification",
    "subscriber_domains",
]

APPROVALS_NEEDED = 2


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
        self._requests = RequestStore(self._db)
        self._trail = Trail(self._db, lambda: iso(self._clock()))
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
            self._requests.add(request)
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
            self._requests.approve(request_id, officer, now, now + self._ttl)
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
        return self._requests.get(request_id)

    def list_requests(self, state: str | None = None) -> list[ReidRequest]:
        return [self._requests.get(rid) for rid in self._requests.ids(state)]

    def audit_trail(self, request_id: str | None = None) -> list[AuditEvent]:
        return self._trail.events(request_id)

    def verify_audit(self) -> list[int]:
        """Sequence numbers of audit rows where the hash chain breaks; empty means intact."""
        return self._trail.verify()

    # -- helpers -----------------------------------------------------------------------------

    def _open_request(self, request_id: str, actor: str, refused_event: str) -> ReidRequest:
        """The request if it is still open; an expired one is marked and audited as expired."""
        try:
            request = self.get(request_id)
        except ReidentificationError:
            self._refuse_step(refused_event, request_id, actor, {}, "no such request")
        if request.state in OPEN_STATES and self._clock() > request.expires_at:
            with self._write(if_closed=(refused_event, request_id, actor)):
                self._set_state(request_id, "expired")
                self._audit("expired", request_id, "signalhub", {"what": "request"})
            request = self.get(request_id)
        if request.state not in OPEN_STATES:
            self._refuse_step(
                refused_event,
                request_id,
                actor,
                {"state": request.state},
                f"the request is {request.state}",
            )
        return request

    def _valid_approvals(self, request_id: str) -> set[str]:
        return self._requests.valid_approvals(request_id, self._clock())

    def _set_state(self, request_id: str, state: str) -> None:
        self._requests.set_state(request_id, state)

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
            if isinstance(exc, ClosedMeanwhileError) and if_closed is not None:
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
        """Append one event to the trail; only inside :meth:`_write`."""
        self._trail.append(event, request_id, actor, detail)


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
