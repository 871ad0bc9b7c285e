"""Audit records: one per policy decision, allow and deny alike, with no clear identifier.

The record says who received (or was refused) what about which signal, why, and under which
policy version. Subjects are referenced by pseudonyms in the hub's own audit domain, so that a
subject-access request can be answered without the audit trail holding a BSN.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from signalhub.types import AvroSchema, Record

__all__ = [
    "AUDIT_DOMAIN",
    "AUDIT_TOPIC",
    "NO_SUBSCRIPTION",
    "DecisionContext",
    "audit_record",
    "decision_id",
    "delivery_id",
    "load_audit_schema",
]

AUDIT_TOPIC = "audit"
#: Pseudonym domain of the audit trail's subject references; no subscriber is ever in it.
AUDIT_DOMAIN = "signalhub-audit"
#: Subscription id recorded when a signal type has no active subscription at all.
NO_SUBSCRIPTION = "-"

_DELIVERY_NAMESPACE = uuid.UUID("6f1d2c1e-5b7a-4c1e-9a53-5f1a0b2f7d10")


def delivery_id(signal_id: str, subscriber: str) -> str:
    """Stable id of the delivery of one signal to one subscriber, for de-duplication downstream."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"delivery/{signal_id}/{subscriber}"))


def decision_id(signal_id: str, subscription_id: str, policy_version: str) -> str:
    """Stable id of one decision: reprocessing after a crash yields the same id."""
    return str(
        uuid.uuid5(_DELIVERY_NAMESPACE, f"decision/{signal_id}/{subscription_id}/{policy_version}")
    )


def load_audit_schema(schemas_dir: Path) -> AvroSchema:
    """The audit record's Avro schema (``schemas/hub/audit_record.avsc``)."""
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
