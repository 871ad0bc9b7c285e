"""Audit records: one per policy decision, allow and deny alike, with no clear identifier.

The record says who received (or was refused) what about which signal, why, and under which
policy version. Subjects are referenced by pseudonyms in the hub's own audit domain, so that a
subject-access request can be answered without the audit trail holding a BSN.

On the ``audit`` topic a signal's decisions travel together, as one :func:`audit_entry`
(``schemas/hub/audit_entry.avsc``): one Kafka record per signal instead of one per decision
halves what the enforcer produces (bench/README.md). Readers expand an entry into its decision
records with :func:`decisions_in`, which also reads the older one-record-per-decision form.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from signalhub.errors import RecordError
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import AvroSchema, Record
from signalhub.wire import decision_id

__all__ = [
    "AUDIT_DOMAIN",
    "NO_SUBSCRIPTION",
    "DecisionContext",
    "audit_entry",
    "audit_record",
    "decisions_in",
    "load_audit_schema",
    "register_audit_schemas",
]

#: Pseudonym domain of the audit trail's subject references; no subscriber is ever in it.
AUDIT_DOMAIN = "signalhub-audit"
#: Subscription id recorded when a signal type has no active subscription at all.
NO_SUBSCRIPTION = "-"


def load_audit_schema(schemas_dir: Path) -> AvroSchema:
    """The schema of what the enforcer writes to the audit topic: an entry of decision records.

    ``audit_entry.avsc`` names its item type; the definition from ``audit_record.avsc`` is put
    in its place, so each file holds one record type and the parsed schema stands alone.
    """
    entry: AvroSchema = json.loads((schemas_dir / "hub" / "audit_entry.avsc").read_text("utf-8"))
    decisions = next(f for f in entry["fields"] if f["name"] == "decisions")
    decisions["type"]["items"] = _decision_schema(schemas_dir)
    return entry


def register_audit_schemas(registry: SchemaRegistry, schemas_dir: Path) -> None:
    """Teach ``registry`` both forms on the audit topic: entries, and single decision records.

    Single records are what the enforcer wrote before entries existed; a topic or a replay may
    still hold them.
    """
    registry.register(load_audit_schema(schemas_dir))
    registry.register(_decision_schema(schemas_dir))


def decisions_in(record: Record) -> list[Record]:
    """The decision records of a decoded audit-topic record (an entry, or one old record)."""
    decisions = record.get("decisions")
    if isinstance(decisions, list):
        return decisions
    if "decision_id" in record:
        return [record]
    raise RecordError("not an audit record: neither an audit entry nor a decision record")


def _decision_schema(schemas_dir: Path) -> AvroSchema:
    schema: AvroSchema = json.loads((schemas_dir / "hub" / "audit_record.avsc").read_text("utf-8"))
    return schema


@dataclass(frozen=True)
class DecisionContext:
    """Where the decided signal came from: the part of an audit record shared by its decisions."""

    signal_id: str
    signal_type: str
    source_agency: str
    source_topic: str
    source_partition: int
    source_offset: int
    observed_at: datetime
    subject_refs: tuple[str, ...]


def audit_record(
    context: DecisionContext,
    *,
    subscription_id: str,
    subscriber: str,
    purpose: str,
    legal_basis: str,
    policy_version: str,
    outcome: str,
    reasons: tuple[str, ...],
    decided_at: datetime,
    clear: tuple[str, ...] = (),
    pseudonymised: tuple[str, ...] = (),
    withheld: tuple[str, ...] = (),
    generalised: tuple[str, ...] = (),
    pseudonym_domain: str | None = None,
    delivery: str | None = None,
) -> Record:
    """One audit record, ready to encode with the audit schema."""
    return {
        "decision_id": decision_id(context.signal_id, subscription_id, policy_version),
        "signal_id": context.signal_id,
        "signal_type": context.signal_type,
        "source_agency": context.source_agency,
        "source_topic": context.source_topic,
        "source_partition": context.source_partition,
        "source_offset": context.source_offset,
        "subscription_id": subscription_id,
        "subscriber": subscriber,
        "purpose": purpose,
        "legal_basis": legal_basis,
        "policy_version": policy_version,
        "outcome": outcome,
        "fields_clear": list(clear),
        "fields_pseudonymised": list(pseudonymised),
        "fields_withheld": list(withheld),
        "fields_generalised": list(generalised),
        "reasons": list(reasons),
        "pseudonym_domain": pseudonym_domain,
        "delivery_id": delivery,
        "subject_refs": list(context.subject_refs),
        "observed_at": context.observed_at,
        "decided_at": decided_at,
    }


def audit_entry(signal_id: str, decisions: Sequence[Record]) -> Record:
    """The audit-topic record of one signal: all its decision records, ready to encode."""
    return {"signal_id": signal_id, "decisions": list(decisions)}
