"""The questions a privacy officer asks of the audit store, and exports in the LDV field names.

``subject``: every disclosure about one person, found through the pseudonyms the enforcer put in
each record's ``subject_refs`` (the hub's audit domain); the BSN asked about is pseudonymised
here the same way and never stored. ``query``: decisions filtered by subscriber, signal type,
time and outcome. Exports (CSV, JSON Lines) name their fields after the Dutch *Logboek
Dataverwerkingen* standard (LDV) where it has a field, ``dpl.signalhub.*`` otherwise; the
mapping is documented in docs/audit.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from signalhub.audit.record import AUDIT_DOMAIN
from signalhub.audit.store import DECISION, AuditStore, StoredRecord
from signalhub.config import Settings
from signalhub.pseudonym.keys import load_master_key
from signalhub.pseudonym.pseudonyms import Pseudonymiser, normalise

__all__ = [
    "LDV_COLUMNS",
    "AuditQuery",
    "find",
    "is_bsn",
    "search_refs",
    "subject_disclosures",
    "subject_refs_for",
    "to_ldv",
    "write_csv",
    "write_jsonl",
]

OUTCOMES = ("allow", "deny", "error")
_SIGNALHUB_FIELDS = (
    "seq",
    "decision_id",
    "signal_id",
    "signal_type",
    "source_agency",
    "subscription_id",
    "subscriber",
    "purpose",
    "legal_basis",
    "policy_version",
    "outcome",
    "fields_clear",
    "fields_pseudonymised",
    "fields_withheld",
    "fields_generalised",
    "reasons",
    "delivery_id",
    "pseudonym_domain",
    "observed_at",
    "row_hash",
)
#: Column order of the CSV export (the JSON Lines export nests ``resource`` and ``attributes``).
LDV_COLUMNS = (
    "trace_id",
    "span_id",
    "name",
    "status_code",
    "start_time",
    "end_time",
    "resource.service.name",
    "dpl.core.processing_activity_id",
    "dpl.core.data_subject_id",
    "dpl.core.data_subject_id_type",
    *(f"dpl.signalhub.{name}" for name in _SIGNALHUB_FIELDS),
)


@dataclass(frozen=True)
class AuditQuery:
    """Filters over decision records; unset filters match everything. ``until`` is exclusive."""

    subscriber: str | None = None
    signal_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    subject_refs: tuple[str, ...] = ()

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition and its parameters (values are always parameters)."""
        clauses = ["kind = ?"]
        params: list[Any] = [DECISION]
        for column, value in (
            ("subscriber", self.subscriber),
            ("signal_type", self.signal_type),
            ("outcome", self.outcome),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.since is not None:
            clauses.append("decided_ms >= ?")
            params.append(_millis(self.since))
        if self.until is not None:
            clauses.append("decided_ms < ?")
            params.append(_millis(self.until))
        if self.subject_refs:
            marks = ", ".join("?" for _ in self.subject_refs)
            clauses.append(
                f"seq IN (SELECT seq FROM audit_subject WHERE subject_ref IN ({marks}))"  # noqa: S608
            )
            params.extend(self.subject_refs)
        return " AND ".join(clauses), params


def _millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def find(store: AuditStore, query: AuditQuery) -> list[StoredRecord]:
    """Decision records matching ``query``, in store order."""
    where, params = query.where()
    return store.select(where, params)


def is_bsn(identifier: str) -> bool:
    """True when ``identifier`` normalises to nine digits, the shape of a BSN.

    The eleven-test is deliberately not applied: the question is what the hub disclosed, and a
    source may have sent a number that fails it.
    """
    digits = normalise("bsn", identifier)
    return len(digits) == 9 and digits.isdigit()


def search_refs(bsn: str, pseudonymisers: Iterable[Pseudonymiser]) -> list[str]:
    """The audit-domain pseudonyms of ``bsn`` under each given key version."""
    return sorted({p.pseudonym(AUDIT_DOMAIN, "bsn", bsn) for p in pseudonymisers})


def subject_refs_for(settings: Settings, bsn: str) -> list[str]:
    """The subject references to search for one person: the seam for key rotation.

    Records carry pseudonyms made with the key version current when they were decided. Today
    the hub has one master key version, so this is its pseudonym; once the key ring keeps older
    versions, this returns the pseudonym under every version still in the ring.
    """
    master_key, version = load_master_key(settings)
    return search_refs(bsn, [Pseudonymiser(master_key, version)])


def subject_disclosures(
    store: AuditStore, refs: Sequence[str], *, include_refusals: bool = False
) -> list[StoredRecord]:
    """Every disclosure (``allow``) about the person behind ``refs``; refusals too if asked."""
    if not refs:
        return []
    query = AuditQuery(subject_refs=tuple(refs), outcome=None if include_refusals else "allow")
    return find(store, query)


def _trace_id(signal_id: str) -> str:
    """LDV trace_id (16 bytes hex): the signal id itself when it is a UUID, else its hash."""
    try:
        return uuid.UUID(signal_id).hex
    except ValueError:
        return hashlib.sha256(signal_id.encode()).hexdigest()[:32]


def _span_id(entry_id: str) -> str:
    """LDV span_id (8 bytes hex), derived from the decision id."""
    return hashlib.sha256(entry_id.encode()).hexdigest()[:16]


def to_ldv(stored: StoredRecord, subject_refs: Sequence[str] | None = None) -> dict[str, Any]:
    """One stored entry as an LDV log line (nested; see docs/audit.md for every field).

    ``subject_refs`` narrows ``dpl.core.data_subject_id`` to the person asked about.
    """
    record = stored.record
    if stored.kind != DECISION:
        return {
            "trace_id": _trace_id(stored.entry_id),
            "span_id": _span_id(stored.entry_id),
            "name": f"signalhub.{stored.kind}",
            "status_code": "STATUS_CODE_OK",
            "start_time": record.get("ran_at"),
            "end_time": record.get("ran_at"),
            "resource": {"attributes": {"service.name": "signalhub"}},
            "attributes": {
                "dpl.signalhub.seq": stored.seq,
                "dpl.signalhub.row_hash": stored.row_hash,
                f"dpl.signalhub.{stored.kind}": record,
            },
        }
    refs = list(record.get("subject_refs") or [])
    if subject_refs is not None:
        refs = [ref for ref in refs if ref in set(subject_refs)]
    activity = f"urn:signalhub:subscription:{record['subscription_id']}"
    attributes: dict[str, Any] = {
        "dpl.core.processing_activity_id": activity,
        "dpl.core.data_subject_id": ";".join(refs) or None,
        "dpl.core.data_subject_id_type": "BSN" if refs else None,
    }
    extra = {**record, "seq": stored.seq, "row_hash": stored.row_hash}
    for name in _SIGNALHUB_FIELDS:
        attributes[f"dpl.signalhub.{name}"] = extra.get(name)
    outcome = record["outcome"]
    return {
        "trace_id": _trace_id(record["signal_id"]),
        "span_id": _span_id(stored.entry_id),
        "name": "signalhub.disclose" if outcome == "allow" else "signalhub.withhold",
        "status_code": "STATUS_CODE_ERROR" if outcome == "error" else "STATUS_CODE_OK",
        "start_time": record["decided_at"],
        "end_time": record["decided_at"],
        "resource": {"attributes": {"service.name": "signalhub"}},
        "attributes": attributes,
    }


def write_jsonl(lines: Iterable[dict[str, Any]], out: TextIO) -> int:
    """One LDV line per row; returns the number written."""
    count = 0
    for line in lines:
        out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count


def write_csv(lines: Iterable[dict[str, Any]], out: TextIO) -> int:
    """LDV lines flattened to :data:`LDV_COLUMNS`; lists as JSON arrays in their cell."""
    writer = csv.DictWriter(out, fieldnames=list(LDV_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    count = 0
    for line in lines:
        flat: dict[str, Any] = {
            k: v for k, v in line.items() if k not in ("resource", "attributes")
        }
        flat["resource.service.name"] = line["resource"]["attributes"]["service.name"]
        for key, value in line["attributes"].items():
            flat[key] = (
                json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value
            )
        writer.writerow(flat)
        count += 1
    return count
