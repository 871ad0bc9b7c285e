"""Signals and an in-process enforcement core for the pseudonymisation tests.

The core is real (schemas, the shipped policy on the embedded OPA engine, subscriptions); only
its inputs are made here: a signal with known identifiers, encoded as a connector would.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from signalhub.audit import record as audit_record
from signalhub.config import Settings, load_settings
from signalhub.enforcer.core import Enforcement, SourceRecord
from signalhub.enforcer.projection import PseudonymSink
from signalhub.policy.decision import Decision
from signalhub.policy.engine import EmbeddedPolicyEngine, PolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions
from signalhub.types import JSON, Record

KEY = bytes(range(32))
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
#: BSNs that pass the eleven test.
BSN = "111222333"
OTHER_BSN = "123456782"

_SETTINGS: Settings | None = None
_REGISTRY: SchemaRegistry | None = None
_POLICY: EmbeddedPolicyEngine | None = None


def settings() -> Settings:
    global _SETTINGS
    if _SETTINGS is None:
        _SETTINGS = load_settings()
    return _SETTINGS


def registry() -> SchemaRegistry:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = SchemaRegistry.from_dir(settings().schemas_dir)
    return _REGISTRY


def shipped_policy() -> EmbeddedPolicyEngine:
    global _POLICY
    if _POLICY is None:
        _POLICY = EmbeddedPolicyEngine.from_dir(settings().policies_dir)
    return _POLICY


def signal(signal_type: str, source: str = "politie", **payload: Any) -> Record:
    """A complete signal record: every payload field present (null unless given)."""
    schema = registry().signal(signal_type)
    body: Record = {spec.name: None for spec in schema.payload_fields}
    body.update(payload)
    return {
        "envelope": {
            "signal_id": str(uuid.uuid4()),
            "signal_type": signal_type,
            "source_agency": source,
            "source_ref": "REF-1",
            "observed_at": NOW,
            "registered_at": NOW,
            "schema_version": schema.version,
        },
        "payload": body,
    }


def nuisance(**payload: Any) -> Record:
    values: dict[str, Any] = {
        "subject_bsn": BSN,
        "subject_name": "Inaya Luitgardis van Neustrië",
        "address": "Nazarethweg 20A, Maastricht",
        "postcode": "6225 TZ",
        "category": "noise",
        "severity": 4,
        "reporter_type": "resident",
        "neighbourhood_code": "BU09350601",
        "description": "Veel lawaai.",
    }
    values.update(payload)
    return signal("nuisance_report", "woningcorporatie", **values)


def drug(**payload: Any) -> Record:
    values: dict[str, Any] = {
        "subject_bsn": BSN,
        "subject_name": "Dewi van der Klein",
        "subject_birth_date": date(1982, 3, 22),
        "address": "Tongerseweg 177A, Maastricht",
        "postcode": "6226 MM",
        "activity": "dealing",
        "substance": "cocaine",
        "severity": 5,
        "neighbourhood_code": "BU09350905",
        "description": "Handel vanuit woning.",
    }
    values.update(payload)
    return signal("drug_signal", "politie", **values)


def source_record(record: Record, offset: int = 0) -> SourceRecord:
    schema = registry().signal(record["envelope"]["signal_type"])
    value = codec.encode(registry(), schema.avro, record)
    return SourceRecord(schema.topic, 0, offset, record["envelope"]["signal_id"].encode(), value)


def enforcement(
    policy: PolicyEngine | None = None,
    *,
    sink: PseudonymSink | None = None,
    leak_guard: bool = True,
) -> Enforcement:
    subscriptions = load_subscriptions(settings().subscriptions_file, registry().signal_types())
    return Enforcement(
        registry(),
        by_signal_type(subscriptions),
        policy or shipped_policy(),
        Pseudonymiser(KEY),
        audit_record.load_audit_schema(settings().schemas_dir),
        max_record_bytes=settings().max_record_bytes,
        clock=lambda: NOW,
        pseudonym_sink=sink,
        leak_guard=leak_guard,
    )


class BsnInClearPolicy:
    """A deliberately wrong policy: the shipped decisions, but every BSN field in clear."""

    def __init__(self, inner: PolicyEngine) -> None:
        self._inner = inner

    @property
    def version(self) -> str:
        return self._inner.version

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        wrong = {}
        for sub_id, decision in self._inner.decide(policy_input).items():
            bsn = tuple(f for f in decision.pseudonymise if f.endswith("_bsn"))
            wrong[sub_id] = replace(
                decision,
                fields=decision.fields + bsn,
                pseudonymise=tuple(f for f in decision.pseudonymise if f not in bsn),
            )
        return wrong


class ListSink:
    """A :class:`PseudonymSink` that remembers what it was told."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def record(self, domain: str, kind: str, value: str, pseudonym: str) -> None:
        self.rows.append((domain, kind, value, pseudonym))
