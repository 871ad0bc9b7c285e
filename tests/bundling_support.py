"""Signals about generated people for the bundling tests, encoded as a connector would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hub_support import Person
from signalhub.enforcer.outputs import SourceRecord
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import Record

#: When the planted patterns start; days are counted from here.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

_AGENCY_SIGNAL = {
    "politie": "nuisance_report",
    "woningcorporatie": "nuisance_report",
    "gemeente": "radicalisation_concern",
    "schuldhulpverlening": "debt_signal",
    "jeugdzorg": "youth_protection_concern",
    "onderwijs": "school_absence",
}
_TYPED: dict[str, dict[str, Any]] = {
    "nuisance_report": {"category": "noise", "severity": 4, "reporter_type": "resident"},
    "debt_signal": {
        "debt_kind": "rent",
        "arrears_eur": 1450,
        "months_in_arrears": 5,
        "creditor": "Woningstichting Maasdal",
    },
    "radicalisation_concern": {"concern_level": "medium", "indicators": ["R2"]},
    "drug_signal": {"activity": "dealing", "substance": "cocaïne", "severity": 4},
    "youth_protection_concern": {
        "concern_kind": "criminal_exploitation",
        "severity": 4,
        "urgency": "urgent",
    },
    "school_absence": {
        "absence_kind": "unauthorised_absence",
        "hours_absent": 24,
        "weeks_absent": 5,
        "school_name": "Sint-Maartenscollege",
    },
}


def about(
    registry: SchemaRegistry,
    person: Person | None,
    agency: str,
    day: int,
    *,
    neighbourhood: str | None = "BU09350101",
    signal_type: str | None = None,
) -> Record:
    """One signal of ``agency`` about ``person`` observed ``day`` days after :data:`START`."""
    kind = signal_type or _AGENCY_SIGNAL[agency]
    schema = registry.signal(kind)
    payload: Record = {spec.name: None for spec in schema.payload_fields}
    payload.update(_TYPED[kind])
    if person is not None:
        identity = {
            "subject_bsn": person.bsn,
            "subject_name": person.name,
            "address": person.address,
            "postcode": person.postcode,
        }
        # A school's absence report carries no address of the pupil.
        payload.update({name: value for name, value in identity.items() if name in payload})
    payload["neighbourhood_code"] = neighbourhood
    payload["description"] = f"Vertrouwelijke toelichting {uuid.uuid4().hex}"
    observed = START + timedelta(days=day)
    return {
        "envelope": {
            "signal_id": str(uuid.uuid4()),
            "signal_type": kind,
            "source_agency": agency,
            "source_ref": f"T-{uuid.uuid4().hex[:8]}",
            "observed_at": observed,
            "registered_at": observed,
            "schema_version": schema.version,
        },
        "payload": payload,
    }


def encoded(registry: SchemaRegistry, signal: Record) -> tuple[str, bytes, bytes]:
    """(topic, key, value) as a connector publishes the signal."""
    schema = registry.signal(signal["envelope"]["signal_type"])
    value = codec.encode(registry, schema.avro, signal)
    return schema.topic, signal["envelope"]["signal_id"].encode(), value


def source_record(registry: SchemaRegistry, signal: Record, offset: int = 0) -> SourceRecord:
    topic, key, value = encoded(registry, signal)
    return SourceRecord(topic, 0, offset, key, value)
