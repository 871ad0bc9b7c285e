"""Single-object framing, validation messages and garbage handling, with real fastavro."""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalhub.errors import DecodeError, UnknownSchemaError, ValidationError
from signalhub.schema.codec import HEADER_LEN, MAGIC, decode, encode, validate_signal
from signalhub.schema.registry import SchemaRegistry

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

PAYLOADS: dict[str, dict[str, Any]] = {
    "nuisance_report": {
        "subject_bsn": "111222333",
        "subject_name": "Jan de Vries",
        "address": "Lange Nieuwstraat 12 bis, Utrecht",
        "postcode": "3512 PH",
        "category": "noise",
        "severity": 3,
        "reporter_type": "resident",
        "neighbourhood_code": "BU03440210",
        "description": "Herhaaldelijk 's nachts harde muziek, buren klagen sinds maart.",
    },
    "drug_signal": {
        "subject_bsn": "123456782",
        "subject_name": "Mohamed El Amrani",
        "subject_birth_date": date(2007, 9, 14),
        "address": "Kanaalweg 4, Utrecht",
        "postcode": "3526 KL",
        "activity": "recruitment_of_minors",
        "substance": "cannabis",
        "severity": 4,
        "neighbourhood_code": "BU03440601",
        "description": None,
    },
    "intimidation_report": {
        "subject_bsn": None,
        "subject_name": "onbekend",
        "address": "Marktplein 1, Houten",
        "postcode": "3991 AB",
        "victim_role": "entrepreneur",
        "severity": 5,
        "organised_crime_indication": True,
    },
    "debt_signal": {
        "subject_bsn": "987654321",
        "subject_name": "Annelies Bakker",
        "subject_birth_date": date(1958, 2, 28),
        "address": "Vechtstraat 88, Utrecht",
        "postcode": "3521 XE",
        "debt_kind": "rent",
        "arrears_eur": 1840,
        "months_in_arrears": 3,
        "creditor": "Woonstichting Mitros",
    },
    "housing_closure": {
        "occupant_bsn": "111222333",
        "occupant_name": "Pieter Jansen",
        "address": "Bollenhofsestraat 100, Utrecht",
        "postcode": "3572 VR",
        "measure": "closure_art13b_opiumwet",
        "effective_date": date(2025, 3, 1),
        "duration_months": 6,
    },
    "radicalisation_concern": {
        "subject_bsn": "123456782",
        "subject_name": "Sam Visser",
        "subject_birth_date": date(2009, 1, 1),
        "concern_level": "medium",
        "indicators": ["IND-03", "IND-11"],
        "address": None,
        "postcode": None,
    },
    "casework_referral": {
        "subject_bsn": "987654321",
        "subject_name": "Kees Smit",
        "subject_birth_date": date(1990, 6, 30),
        "address": "Amsterdamsestraatweg 500, Utrecht",
        "postcode": "3553 EM",
        "referral_reason": "after_detention",
        "urgency": "urgent",
        "referring_professional": "mr. L. de Graaf",
    },
}


def signal_record(signal_type: str, **payload: Any) -> dict[str, Any]:
    return {
        "envelope": {
            "signal_id": str(uuid.UUID(int=42, version=4)),
            "signal_type": signal_type,
            "source_agency": "politie",
            "source_ref": "BVH-2025-000123",
            "observed_at": datetime(2025, 1, 6, 8, 30, 15, 123000, tzinfo=UTC),
            "registered_at": datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
            "schema_version": 1,
        },
        "payload": {**PAYLOADS[signal_type], **payload},
    }


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.from_dir(SCHEMAS)


@pytest.mark.parametrize("signal_type", sorted(PAYLOADS))
def test_every_type_round_trips(registry: SchemaRegistry, signal_type: str) -> None:
    signal = registry.signal(signal_type)
    record = signal_record(signal_type)
    data = encode(registry, signal.avro, record)
    schema, decoded = decode(registry, data)
    assert schema is signal.avro
    assert decoded["envelope"] == record["envelope"]
    for name, value in record["payload"].items():
        assert decoded["payload"][name] == value
    # fields left out of the record come back as their default (null)
    assert set(decoded["payload"]) == {f.name for f in signal.payload_fields}


def test_frame_is_marker_fingerprint_body(registry: SchemaRegistry) -> None:
    signal = registry.signal("nuisance_report")
    data = encode(registry, signal.avro, signal_record("nuisance_report"))
    assert data[:2] == MAGIC == b"\xc3\x01"
    assert data[2:HEADER_LEN] == signal.fingerprint
    assert len(data) > HEADER_LEN


def test_encode_accepts_an_unparsed_schema_and_registers_it(registry: SchemaRegistry) -> None:
    schema = {"type": "record", "name": "Ping", "fields": [{"name": "n", "type": "int"}]}
    data = encode(registry, schema, {"n": 7})
    assert decode(registry, data)[1] == {"n": 7}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"severity": "3"}, "payload.severity: expected int, got str"),
        ({"severity": 9}, "payload.severity: out of range, allowed 1..5"),
        ({"severity": 0}, "payload.severity: out of range, allowed 1..5"),
        ({"severity": 2**40}, "payload.severity: int value out of the Avro int range"),
        ({"category": "fireworks"}, "payload.category: not one of the symbols"),
        ({"severity": None}, "payload.severity: required, but missing or null"),
        ({"subject_bsn": 111222333}, "payload.subject_bsn: expected null or string, got int"),
    ],
    ids=["wrong-type", "above-range", "below-range", "int-overflow", "enum", "missing", "union"],
)
def test_encode_names_the_field_and_the_problem(
    registry: SchemaRegistry, override: dict[str, Any], expected: str
) -> None:
    signal = registry.signal("nuisance_report")
    with pytest.raises(ValidationError, match="^" + expected.replace("(", r"\(")) as info:
        encode(registry, signal.avro, signal_record("nuisance_report", **override))
    assert info.value.code == "invalid"


def test_validation_messages_never_hold_personal_values(registry: SchemaRegistry) -> None:
    signal = registry.signal("nuisance_report")
    record = signal_record("nuisance_report", subject_bsn=111222333, subject_name=["Jan de Vries"])
    with pytest.raises(ValidationError) as info:
        encode(registry, signal.avro, record)
    assert "111222333" not in str(info.value)
    assert "Vries" not in str(info.value)
    assert "payload.subject_bsn" in str(info.value)


def test_encode_refuses_fields_the_schema_lacks(registry: SchemaRegistry) -> None:
    signal = registry.signal("nuisance_report")
    with pytest.raises(ValidationError, match=r"^payload: fields \['subject_bsn_typo'\] are not"):
        encode(registry, signal.avro, signal_record("nuisance_report", subject_bsn_typo="x"))
    record = signal_record("nuisance_report")
    record["extra"] = {}
    with pytest.raises(ValidationError, match=r"^record: fields \['extra'\]"):
        encode(registry, signal.avro, record)


def test_trusted_encode_writes_only_schema_fields_and_still_refuses_wrong_types(
    registry: SchemaRegistry,
) -> None:
    signal = registry.signal("nuisance_report")
    # A key the schema lacks is not checked for, and never written: it cannot reach a reader.
    record = signal_record("nuisance_report", stray_note="STRAY-987654")
    data = encode(registry, signal.avro, record, trusted=True)
    assert b"STRAY-987654" not in data
    assert "stray_note" not in decode(registry, data)[1]["payload"]
    # A value of the wrong type is still refused, by the writer instead of the validator.
    with pytest.raises(ValidationError, match=r"^record cannot be encoded"):
        encode(registry, signal.avro, signal_record("nuisance_report", severity="3"), trusted=True)


def test_envelope_errors_are_named_by_envelope_path(registry: SchemaRegistry) -> None:
    record = signal_record("debt_signal")
    record["envelope"]["observed_at"] = "yesterday"
    with pytest.raises(ValidationError, match=r"^envelope\.observed_at: expected timestamp-millis"):
        encode(registry, registry.signal("debt_signal").avro, record)


def test_housing_closure_requires_an_address(registry: SchemaRegistry) -> None:
    with pytest.raises(ValidationError, match=r"payload\.address: required"):
        validate_signal(registry, signal_record("housing_closure", address=None))


def test_validate_signal_returns_the_schema_of_the_envelope_type(registry: SchemaRegistry) -> None:
    assert validate_signal(registry, signal_record("drug_signal")) is registry.signal("drug_signal")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["envelope"].update(signal_type="weather_report"), "envelope.signal_type"),
        (lambda r: r["envelope"].update(schema_version=2), "envelope.schema_version"),
        (lambda r: r["envelope"].update(schema_version=0), "envelope.schema_version"),
        (lambda r: r.pop("envelope"), "envelope: missing"),
        (lambda r: r["payload"].update(activity="noise"), "payload.activity"),
    ],
    ids=["unknown-type", "future-version", "zero-version", "no-envelope", "other-types-enum"],
)
def test_validate_signal_refuses(registry: SchemaRegistry, mutate: Any, expected: str) -> None:
    record = signal_record("drug_signal")
    mutate(record)
    with pytest.raises(ValidationError, match=expected.replace(".", r"\.")):
        validate_signal(registry, record)


def test_decode_refuses_bad_marker_and_short_input(registry: SchemaRegistry) -> None:
    good = encode(registry, registry.signal("drug_signal").avro, signal_record("drug_signal"))
    with pytest.raises(DecodeError, match="C3 01"):
        decode(registry, b"\x00\x01" + good[2:])
    with pytest.raises(DecodeError):
        decode(registry, good[:9])
    with pytest.raises(DecodeError):
        decode(registry, b"")


def test_decode_refuses_truncated_and_padded_bodies(registry: SchemaRegistry) -> None:
    good = encode(registry, registry.signal("drug_signal").avro, signal_record("drug_signal"))
    with pytest.raises(DecodeError, match="corrupt Avro body"):
        decode(registry, good[:-5])
    with pytest.raises(DecodeError, match="trailing bytes"):
        decode(registry, good + b"\x00")


def test_decode_refuses_an_unknown_fingerprint(registry: SchemaRegistry) -> None:
    good = encode(registry, registry.signal("drug_signal").avro, signal_record("drug_signal"))
    with pytest.raises(UnknownSchemaError, match="fingerprint"):
        decode(registry, MAGIC + b"\xff" * 8 + good[HEADER_LEN:])


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_only_raise_decode_or_unknown_schema(
    registry: SchemaRegistry, data: bytes
) -> None:
    with contextlib.suppress(DecodeError, UnknownSchemaError):
        decode(registry, data)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    signal_type=st.sampled_from(sorted(PAYLOADS)),
    body=st.binary(max_size=400),
)
def test_random_bodies_behind_a_known_fingerprint_only_raise_decode_error(
    registry: SchemaRegistry, signal_type: str, body: bytes
) -> None:
    data = MAGIC + registry.signal(signal_type).fingerprint + body
    try:
        schema, record = decode(registry, data)
    except DecodeError:
        return
    # the rare body that does parse must be a well-formed record of that schema
    assert isinstance(record["envelope"], dict)
    assert schema is registry.signal(signal_type).avro


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    signal_type=st.sampled_from(sorted(PAYLOADS)),
    position=st.integers(min_value=0, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
)
def test_corrupted_records_only_raise_decode_error(
    registry: SchemaRegistry, signal_type: str, position: int, byte: int
) -> None:
    good = bytearray(
        encode(registry, registry.signal(signal_type).avro, signal_record(signal_type))
    )
    good[HEADER_LEN + position % (len(good) - HEADER_LEN)] = byte
    with contextlib.suppress(DecodeError):
        decode(registry, bytes(good))


def test_view_records_round_trip(registry: SchemaRegistry) -> None:
    view = registry.view_schema("drug_signal", ["activity", "severity"], ["subject_bsn"])
    record = signal_record("drug_signal")
    delivered = {
        "envelope": record["envelope"],
        "delivery": {
            "delivery_id": "d-5f1c",
            "subscriber": "woningcorporatie",
            "purpose": "prevent_housing_nuisance",
            "legal_basis": "convenant-zvh-2024 art. 5",
            "policy_version": "ab" * 32,
            "pseudonym_domain": "woningcorporatie",
            "withheld": ["subject_name", "address"],
            "generalised": {},
        },
        "payload": {"subject_bsn": "pn1.k1.abcdef", "activity": "dealing", "severity": 2},
    }
    data = encode(registry, view, delivered)
    schema, decoded = decode(registry, data)
    assert schema is view
    assert decoded == delivered
    with pytest.raises(ValidationError, match=r"payload\.severity: out of range"):
        encode(registry, view, {**delivered, "payload": {**delivered["payload"], "severity": 6}})


def test_older_released_versions_decode_into_the_current_schema(tmp_path: Path) -> None:
    shutil.copytree(SCHEMAS, tmp_path / "schemas")
    old_registry = SchemaRegistry.from_dir(tmp_path / "schemas")
    old = old_registry.signal("debt_signal")
    data = encode(old_registry, old.avro, signal_record("debt_signal"))

    path = tmp_path / "schemas" / "debt_signal.avsc"
    schema = json.loads(path.read_text())
    schema["version"] = 2
    schema["fields"][1]["type"]["fields"].append(
        {"name": "payment_plan", "type": "boolean", "default": False, "doc": "Plan agreed."}
    )
    path.write_text(json.dumps(schema))
    new_registry = SchemaRegistry.from_dir(tmp_path / "schemas")

    read_into, record = decode(new_registry, data)
    assert read_into is new_registry.signal("debt_signal").avro
    assert record["payload"]["payment_plan"] is False
    assert record["payload"]["arrears_eur"] == 1840
    assert record["envelope"]["schema_version"] == 1
