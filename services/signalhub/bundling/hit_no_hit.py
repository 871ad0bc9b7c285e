"""Hit/no-hit ("check op bekendheid"): is a person known to partners of the casework domain?

The answer is yes/no and which agencies reported about the person — never what they reported.
Whether the asker may ask at all is the policy's (``data.signalhub.bundling.hit_no_hit``: the
asker needs an agreement for the casework purpose). Every question, allowed or refused, is
appended to the ``hit_no_hit_log`` table in the bundler's SQLite file, hash-chained on the
ledger (:mod:`signalhub.ledger`; append-only: triggers refuse updates and deletes;
:func:`verify_log` re-computes the chain). The person is
logged as a pseudonym in the audit domain ``signalhub-audit``, the same one the enforcer's audit
records use, so "who asked about this person" is answerable without a clear BSN at rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from signalhub.audit.record import AUDIT_DOMAIN
from signalhub.bundling.rules import BundlingPolicy
from signalhub.bundling.store import BundleStore
from signalhub.bundling.subjects import BUNDLING_DOMAIN
from signalhub.ledger import GENESIS, Chain, Entry, link
from signalhub.pseudonym.pseudonyms import Pseudonymiser

__all__ = ["Answer", "LogEntry", "ask", "read_log", "verify_log"]


@dataclass(frozen=True)
class Answer:
    """The answer to one question: refused, or known yes/no with the agencies that know."""

    allowed: bool
    known: bool | None
    partners: tuple[str, ...]
    reasons: tuple[str, ...]
    policy_version: str
    seq: int


@dataclass(frozen=True)
class LogEntry:
    seq: int
    asked_at: str
    asker: str
    subject_ref: str
    allowed: bool
    known: bool | None
    partners: tuple[str, ...]
    reasons: tuple[str, ...]
    policy_version: str
    prev_hash: str
    hash: str


def ask(
    store: BundleStore,
    policy: BundlingPolicy,
    pseudonymiser: Pseudonymiser,
    asker: str,
    bsn: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Answer:
    """Answer (or refuse) one question and log it; the log entry is written before returning."""
    allowed, reasons = policy.may_ask(asker)
    known: bool | None = None
    partners: tuple[str, ...] = ()
    if allowed:
        key = pseudonymiser.pseudonym(BUNDLING_DOMAIN, "bsn", bsn)
        partners = tuple(store.agencies_of(key))
        known = bool(partners)
    subject_ref = pseudonymiser.pseudonym(AUDIT_DOMAIN, "bsn", bsn)
    seq = _append(
        store,
        clock().isoformat(timespec="milliseconds"),
        asker,
        subject_ref,
        allowed,
        known,
        partners,
        reasons,
        policy.version,
    )
    return Answer(allowed, known, partners, reasons, policy.version, seq)


def _append(
    store: BundleStore,
    asked_at: str,
    asker: str,
    subject_ref: str,
    allowed: bool,
    known: bool | None,
    partners: tuple[str, ...],
    reasons: tuple[str, ...],
    policy_version: str,
) -> int:
    with store.transaction():
        head = store.execute("SELECT seq, hash FROM hit_no_hit_log ORDER BY seq DESC LIMIT 1")
        seq = 1 if not head else int(str(head[0][0])) + 1
        prev = GENESIS if not head else str(head[0][1])
        fields = (seq, asked_at, asker, subject_ref, allowed, known, partners, reasons)
        digest = link(prev, _material(prev, fields, policy_version)).hash
        store.execute(
            "INSERT INTO hit_no_hit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                asked_at,
                asker,
                subject_ref,
                int(allowed),
                None if known is None else int(known),
                json.dumps(list(partners)),
                json.dumps(list(reasons)),
                policy_version,
                prev,
                digest,
            ),
        )
    return seq


def _material(prev: str, fields: tuple[object, ...], policy_version: str) -> bytes:
    """What an entry's hash covers.

    Compact, sorted JSON with non-ASCII escaped: unlike the wire's canonical JSON, but entries
    already written were hashed so, and their hashes are recomputed from the columns.
    """
    seq, asked_at, asker, subject_ref, allowed, known, partners, reasons = fields
    document = {
        "seq": seq,
        "asked_at": asked_at,
        "asker": asker,
        "subject_ref": subject_ref,
        "allowed": allowed,
        "known": known,
        "partners": list(partners),  # type: ignore[call-overload]
        "reasons": list(reasons),  # type: ignore[call-overload]
        "policy_version": policy_version,
        "prev_hash": prev,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def read_log(store: BundleStore) -> list[LogEntry]:
    """Every question and answer, oldest first."""
    rows = store.execute("SELECT * FROM hit_no_hit_log ORDER BY seq")
    return [
        LogEntry(
            seq=int(str(r[0])),
            asked_at=str(r[1]),
            asker=str(r[2]),
            subject_ref=str(r[3]),
            allowed=bool(r[4]),
            known=None if r[5] is None else bool(r[5]),
            partners=tuple(json.loads(str(r[6]))),
            reasons=tuple(json.loads(str(r[7]))),
            policy_version=str(r[8]),
            prev_hash=str(r[9]),
            hash=str(r[10]),
        )
        for r in rows
    ]


def verify_log(store: BundleStore) -> list[str]:
    """Problems with the hash chain (empty: intact), each naming the entry and why."""
    log = read_log(store)
    chain = Chain([_entry(entry) for entry in log], name=lambda index: f"entry {log[index].seq}")
    return [f"hit/no-hit log: {broken}" for broken in chain.breaks()]


def _entry(entry: LogEntry) -> Entry:
    fields = (
        entry.seq,
        entry.asked_at,
        entry.asker,
        entry.subject_ref,
        entry.allowed,
        entry.known,
        entry.partners,
        entry.reasons,
    )
    return Entry(
        entry.prev_hash, entry.hash, _material(entry.prev_hash, fields, entry.policy_version)
    )
