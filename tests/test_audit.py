"""Audit records: records that fit the audit schema, with the decision id the wire derives."""

from __future__ import annotations

from datetime import UTC, datetime

from signalhub import wire
from signalhub.audit import record as audit_record
from signalhub.config import load_settings
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry

SIGNAL = "0b7e1f3a-9a4c-4d52-8a11-1f2e3d4c5b6a"
WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _context() -> audit_record.DecisionContext:
    return audit_record.DecisionContext(
        signal_id=SIGNAL,
        signal_type="nuisance_report",
        source_agency="politie",
        source_topic="signals.nuisance_report",
        source_partition=1,
        source_offset=42,
        observed_at=WHEN,
        subject_refs=("pn1.k1.abc",),
    )


def test_an_audit_record_fits_the_audit_schema_and_round_trips() -> None:
    settings = load_settings()
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    schema = audit_record.load_audit_schema(settings.schemas_dir)
    record = audit_record.audit_record(
        _context(),
        subscription_id="gemeente-openbare-orde",
        subscriber="gemeente",
        purpose="public_order",
        legal_basis="Gemeentewet art. 172",
        policy_version="sha256:a",
        outcome="allow",
        reasons=("agreement nuisance_report/gemeente/public_order",),
        decided_at=WHEN,
        clear=("severity",),
        pseudonymised=("subject_bsn",),
        withheld=("address",),
        pseudonym_domain="gemeente",
        delivery=wire.delivery_id(SIGNAL, "gemeente"),
    )

    data = codec.encode(registry, schema, audit_record.audit_entry(SIGNAL, [record]))
    _, entry = codec.decode(registry, data)

    (decoded,) = audit_record.decisions_in(entry)
    assert entry["signal_id"] == SIGNAL
    assert decoded == record
    assert decoded["decision_id"] == wire.decision_id(SIGNAL, "gemeente-openbare-orde", "sha256:a")
    assert decoded["source_offset"] == 42


def test_a_deny_record_has_no_delivery_and_no_disclosed_fields() -> None:
    record = audit_record.audit_record(
        _context(),
        subscription_id=audit_record.NO_SUBSCRIPTION,
        subscriber=audit_record.NO_SUBSCRIPTION,
        purpose=audit_record.NO_SUBSCRIPTION,
        legal_basis=audit_record.NO_SUBSCRIPTION,
        policy_version="sha256:a",
        outcome="deny",
        reasons=("no active subscription for this signal type",),
        decided_at=WHEN,
    )
    assert record["delivery_id"] is None
    assert record["pseudonym_domain"] is None
    assert record["fields_clear"] == record["fields_pseudonymised"] == []
    assert record["subject_refs"] == ["pn1.k1.abc"]
