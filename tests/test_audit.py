"""Audit records: stable, distinct ids, and records that fit the audit schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from signalhub.audit import record as audit_record
from signalhub.config import load_settings
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry

SIGNAL = "0b7e1f3a-9a4c-4d52-8a11-1f2e3d4c5b6a"
OTHER = "5c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
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


def test_a_delivery_id_is_the_same_every_time_for_one_signal_and_subscriber() -> None:
    assert audit_record.delivery_id(SIGNAL, "gemeente") == audit_record.delivery_id(
        SIGNAL, "gemeente"
    )


def test_delivery_ids_differ_per_subscriber_and_per_signal() -> None:
    ids = {
        audit_record.delivery_id(signal, subscriber)
        for signal in (SIGNAL, OTHER)
        for subscriber in ("gemeente", "politie", "om")
    }
    assert len(ids) == 6


def test_decision_ids_are_stable_and_change_with_subscription_and_policy_version() -> None:
    one = audit_record.decision_id(SIGNAL, "gemeente-openbare-orde", "sha256:a")
    assert one == audit_record.decision_id(SIGNAL, "gemeente-openbare-orde", "sha256:a")
    others = {
        audit_record.decision_id(SIGNAL, "gemeente-openbare-orde", "sha256:b"),
        audit_record.decision_id(SIGNAL, "politie-handhaving", "sha256:a"),
        audit_record.decision_id(OTHER, "gemeente-openbare-orde", "sha256:a"),
    }
    assert one not in others
    assert len(others) == 3


@given(st.text(max_size=80), st.text(max_size=20))
def test_ids_are_rfc_4122_version_5_uuids_of_their_names(signal_id: str, other: str) -> None:
    namespace = uuid.UUID("6f1d2c1e-5b7a-4c1e-9a53-5f1a0b2f7d10")
    expected = uuid.uuid5(namespace, f"delivery/{signal_id}/{other}")
    assert audit_record.delivery_id(signal_id, other) == str(expected)
    expected = uuid.uuid5(namespace, f"decision/{signal_id}/{other}/v1")
    assert audit_record.decision_id(signal_id, other, "v1") == str(expected)


def test_decision_and_delivery_ids_never_collide() -> None:
    assert audit_record.delivery_id(SIGNAL, "gemeente") != audit_record.decision_id(
        SIGNAL, "gemeente", ""
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
        delivery=audit_record.delivery_id(SIGNAL, "gemeente"),
    )

    data = codec.encode(registry, schema, audit_record.audit_entry(SIGNAL, [record]))
    _, entry = codec.decode(registry, data)

    (decoded,) = audit_record.decisions_in(entry)
    assert entry["signal_id"] == SIGNAL
    assert decoded == record
    assert decoded["decision_id"] == audit_record.decision_id(
        SIGNAL, "gemeente-openbare-orde", "sha256:a"
    )
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
