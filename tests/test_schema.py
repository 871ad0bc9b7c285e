"""The schema registry: what the .avsc files promise, views, and the policy attributes."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from signalhub.enforcer.leak_guard import HUB_IDS
from signalhub.errors import SchemaError, UnknownSchemaError
from signalhub.schema.compat import released_schemas
from signalhub.schema.doc import BEGIN, END, render_tables
from signalhub.schema.registry import (
    ENVELOPE_NAME,
    PII_KINDS,
    SchemaRegistry,
    age_band,
    fingerprint_of,
    policy_attributes,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"

SUBJECT = {
    "subject_bsn": "bsn",
    "subject_name": "name",
    "address": "address",
    "postcode": "postcode",
}
BIRTH = {"subject_birth_date": "birth_date"}
COMMON = {"neighbourhood_code": None, "description": "free_text"}
#: signal type -> payload field -> (pii kind, policy flag), as the brief lists them.
EXPECTED: dict[str, dict[str, tuple[str | None, bool]]] = {
    "nuisance_report": {
        **{k: (v, False) for k, v in SUBJECT.items()},
        "category": (None, True),
        "severity": (None, True),
        "reporter_type": (None, True),
    },
    "drug_signal": {
        **{k: (v, False) for k, v in {**SUBJECT, **BIRTH}.items()},
        "activity": (None, True),
        "substance": (None, False),
        "severity": (None, True),
    },
    "intimidation_report": {
        **{k: (v, False) for k, v in SUBJECT.items()},
        "victim_role": (None, True),
        "severity": (None, True),
        "organised_crime_indication": (None, True),
    },
    "debt_signal": {
        **{k: (v, False) for k, v in {**SUBJECT, **BIRTH}.items()},
        "debt_kind": (None, True),
        "arrears_eur": (None, False),
        "months_in_arrears": (None, True),
        "creditor": (None, False),
        "consent": (None, True),  # added in v2
    },
    "housing_closure": {
        "occupant_bsn": ("bsn", False),
        "occupant_name": ("name", False),
        "address": ("address", False),
        "postcode": ("postcode", False),
        "measure": (None, True),
        "effective_date": (None, False),
        "duration_months": (None, False),
    },
    "radicalisation_concern": {
        **{k: (v, False) for k, v in {**SUBJECT, **BIRTH}.items()},
        "concern_level": (None, True),
        "indicators": (None, False),
    },
    "casework_referral": {
        **{k: (v, False) for k, v in {**SUBJECT, **BIRTH}.items()},
        "referral_reason": (None, True),
        "urgency": (None, True),
        "referring_professional": ("name", False),
        "consent": (None, True),  # added in v2
    },
}
EXPECTED["youth_protection_concern"] = {
    **{k: (v, False) for k, v in {**SUBJECT, **BIRTH}.items()},
    "concern_kind": (None, True),
    "severity": (None, True),
    "urgency": (None, True),
}
# A school's report names the pupil but not their address: the neighbourhood is the school's.
EXPECTED["school_absence"] = {
    "subject_bsn": ("bsn", False),
    "subject_name": ("name", False),
    **{k: (v, False) for k, v in BIRTH.items()},
    "absence_kind": (None, True),
    "hours_absent": (None, True),
    "weeks_absent": (None, True),
    "school_name": (None, False),
}
for _fields in EXPECTED.values():
    _fields.update({k: (v, False) for k, v in COMMON.items()})
# Derived by the hub's bundler, not reported by an agency: no pii, no neighbourhood, no free text.
EXPECTED["casework_alert"] = {
    "subject_ref": (None, False),
    "subject_kind": (None, True),
    "bundle_id": (None, False),
    "revision": (None, False),
    "rule": (None, True),
    "reasons": (None, False),
    "agencies": (None, False),
    "signal_types": (None, False),
    "signal_count": (None, False),
    "first_observed": (None, False),
    "last_observed": (None, False),
}
# Reported by residents through the meldpunt: places and patterns, no person, no reporter.
EXPECTED["neighbourhood_report"] = {
    "category": (None, True),
    "street": ("address", False),
    "postcode_area": (None, False),
    "neighbourhood_code": (None, False),
    "time_of_day": (None, False),
    "frequency": (None, True),
    "description": ("free_text", False),
}


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.from_dir(SCHEMAS)


@pytest.fixture
def schemas_factory(tmp_path: Path) -> Any:
    """``schemas_factory(type, edit)`` -> a copy of schemas/ with ``edit(schema_json)`` applied."""

    def make(signal_type: str | None = None, edit: Any = None) -> Path:
        folder = tmp_path / "schemas"
        shutil.copytree(SCHEMAS, folder)
        if signal_type is not None:
            path = folder / f"{signal_type}.avsc"
            schema = json.loads(path.read_text())
            edit(schema)
            path.write_text(json.dumps(schema))
        return folder

    return make


def test_registry_holds_exactly_the_brief_types(registry: SchemaRegistry) -> None:
    assert registry.signal_types() == sorted(EXPECTED)


@pytest.mark.parametrize("signal_type", sorted(EXPECTED))
def test_fields_carry_the_brief_pii_and_policy_metadata(
    registry: SchemaRegistry, signal_type: str
) -> None:
    signal = registry.signal(signal_type)
    got = {f.name: (f.pii, f.policy) for f in signal.payload_fields}
    assert got == EXPECTED[signal_type]
    assert all(f.pii in PII_KINDS for f in signal.payload_fields if f.pii)


def test_only_the_ids_the_hub_makes_are_marked_hub_id(registry: SchemaRegistry) -> None:
    marked = {
        (signal.signal_type, spec.name, spec.hub_id)
        for signal in registry.signals()
        for spec in signal.payload_fields
        if spec.hub_id is not None
    }
    assert marked == {("casework_alert", "bundle_id", "bundle_id")}
    for _, name, _ in marked:
        assert f"payload.{name}" in HUB_IDS, "the leak guard skips it only if it knows it"


@pytest.mark.parametrize("signal_type", sorted(EXPECTED))
def test_signal_schemas_share_the_named_envelope(
    registry: SchemaRegistry, signal_type: str
) -> None:
    signal = registry.signal(signal_type)
    raw = json.loads((SCHEMAS / f"{signal_type}.avsc").read_text())
    assert raw["namespace"] == "nl.signalhub.signal"
    assert raw["fields"][0] == {
        "name": "envelope",
        "type": ENVELOPE_NAME,
        "doc": raw["fields"][0]["doc"],
    }
    newest = max(released_schemas(SCHEMAS)[signal_type])
    assert signal.version == raw["version"] == newest
    evolved = ("debt_signal", "casework_referral", "casework_alert")
    assert signal.version == (2 if signal_type in evolved else 1)
    assert signal.avro["fields"][0]["type"]["name"] == ENVELOPE_NAME
    assert signal.topic == f"signals.{signal_type}"
    assert all(f.get("doc") for f in signal.avro["fields"][1]["type"]["fields"])


def test_subject_fields_are_optional_except_the_closure_address(registry: SchemaRegistry) -> None:
    for signal in registry.signals():
        for spec in signal.payload_fields:
            if spec.pii is not None:
                required = (signal.signal_type, spec.name) == ("housing_closure", "address")
                assert spec.optional is not required, (signal.signal_type, spec.name)


def test_dates_use_logical_types(registry: SchemaRegistry) -> None:
    envelope = registry.signal("drug_signal").avro["fields"][0]["type"]
    times = {f["name"]: f["type"] for f in envelope["fields"]}
    assert times["observed_at"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert registry.signal("drug_signal").field("subject_birth_date").avro_type == [
        "null",
        {"type": "int", "logicalType": "date"},
    ]
    assert registry.signal("housing_closure").field("effective_date").avro_type == {
        "type": "int",
        "logicalType": "date",
    }


def _crc64_avro(data: bytes) -> bytes:
    """CRC-64-AVRO straight from the Avro specification, independent of fastavro."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def test_fingerprint_is_crc64_avro_of_the_canonical_form(registry: SchemaRegistry) -> None:
    from fastavro.schema import to_parsing_canonical_form

    for signal in registry.signals():
        canonical = to_parsing_canonical_form(signal.avro).encode()
        assert signal.fingerprint == _crc64_avro(canonical)
        assert registry.by_fingerprint(signal.fingerprint) is signal.avro
    assert fingerprint_of("null") == _crc64_avro(b'"null"')


def test_unknown_names_raise(registry: SchemaRegistry) -> None:
    with pytest.raises(UnknownSchemaError, match="weather"):
        registry.signal("weather")
    with pytest.raises(UnknownSchemaError):
        registry.by_fingerprint(b"\x00" * 8)
    with pytest.raises(SchemaError, match="no payload field 'colour'"):
        registry.signal("drug_signal").field("colour")


def test_register_is_idempotent_and_content_addressed(registry: SchemaRegistry) -> None:
    schema = {"type": "record", "name": "Probe", "fields": [{"name": "x", "type": "long"}]}
    copy = json.loads(json.dumps(schema))
    fp = registry.register(schema)
    assert registry.register(schema) == fp == registry.register(copy)
    assert registry.by_fingerprint(fp)["name"] == "Probe"


def test_view_projects_clear_and_pseudonymised_fields(registry: SchemaRegistry) -> None:
    view = registry.view_schema("drug_signal", ["severity", "activity"], ["subject_bsn"])
    assert view["name"].startswith("nl.signalhub.view.drug_signal_")
    envelope, delivery, payload = view["fields"]
    assert envelope["type"]["name"] == "nl.signalhub.view.DeliveredEnvelope"
    signal_envelope = registry.signal("drug_signal").avro["fields"][0]["type"]
    assert [f["name"] for f in envelope["type"]["fields"]] == [
        f["name"] for f in signal_envelope["fields"]
    ], "the same shape as the connector's envelope"
    delivered_docs = {f["name"]: f["doc"] for f in envelope["type"]["fields"]}
    assert "pseudonym domain" in delivered_docs["signal_id"]
    assert "keyed reference" in delivered_docs["source_ref"]
    assert [f["name"] for f in delivery["type"]["fields"]] == [
        "delivery_id",
        "subscriber",
        "purpose",
        "legal_basis",
        "policy_version",
        "pseudonym_domain",
        "withheld",
        "generalised",
    ]
    fields = {f["name"]: f for f in payload["type"]["fields"]}
    assert list(fields) == ["subject_bsn", "activity", "severity"]  # schema order
    assert fields["subject_bsn"]["type"] == ["null", "string"]
    assert fields["subject_bsn"]["pseudonymised"] is True
    assert fields["severity"]["type"] == "int"
    assert fields["activity"]["type"]["type"] == "enum"
    assert registry.by_fingerprint(registry.register(view)) is view


def test_view_is_deterministic_cached_and_never_collides(registry: SchemaRegistry) -> None:
    a = registry.view_schema("drug_signal", ["severity"], ["subject_bsn"])
    assert registry.view_schema("drug_signal", ("severity",), {"subject_bsn"}) is a
    fresh = SchemaRegistry.from_dir(SCHEMAS).view_schema(
        "drug_signal", ["severity"], ["subject_bsn"]
    )
    assert fingerprint_of(fresh) == fingerprint_of(a)
    assert fresh["name"] == a["name"]
    b = registry.view_schema("drug_signal", ["severity", "subject_bsn"], [])
    c = registry.view_schema("drug_signal", ["severity"], [])
    assert len({a["name"], b["name"], c["name"]}) == 3
    assert len({fingerprint_of(a), fingerprint_of(b), fingerprint_of(c)}) == 3


def test_view_pseudonymises_a_field_named_in_both_sets_and_ignores_unknown_names(
    registry: SchemaRegistry,
) -> None:
    view = registry.view_schema("nuisance_report", ["subject_bsn", "colour"], ["subject_bsn"])
    (field,) = view["fields"][2]["type"]["fields"]
    assert field["name"] == "subject_bsn"
    assert field["pseudonymised"] is True


@pytest.mark.parametrize(
    ("birth", "band", "minor"),
    [
        (date(2025, 6, 1), "0-11", True),
        (date(2013, 6, 2), "0-11", True),  # turns 12 tomorrow
        (date(2013, 6, 1), "12-17", True),  # 12 today
        (date(2007, 6, 2), "12-17", True),  # turns 18 tomorrow
        (date(2007, 6, 1), "18-22", False),  # 18 today
        (date(2002, 6, 1), "23-64", False),
        (date(1960, 6, 2), "23-64", False),  # turns 65 tomorrow
        (date(1960, 6, 1), "65+", False),
        (date(2026, 1, 1), None, None),  # in the future
    ],
    ids=lambda v: str(v),
)
def test_policy_attributes_age_band_boundaries(
    registry: SchemaRegistry, birth: date, band: str | None, minor: bool | None
) -> None:
    payload = {"subject_birth_date": birth, "activity": "dealing", "severity": 2}
    attrs = policy_attributes(registry.signal("drug_signal"), payload, date(2025, 6, 1))
    assert attrs == {"activity": "dealing", "severity": 2, "age_band": band, "minor": minor}


def test_age_band_accepts_leap_day_birthdays() -> None:
    assert age_band(date(2008, 2, 29), date(2025, 2, 28)) == "12-17"
    assert age_band(date(2007, 2, 28), date(2025, 2, 28)) == "18-22"


def test_policy_attributes_read_an_avro_day_count_and_a_missing_birth_date(
    registry: SchemaRegistry,
) -> None:
    signal = registry.signal("casework_referral")
    days = (date(2010, 1, 1) - date(1970, 1, 1)).days
    base = {"referral_reason": "safety_risk", "urgency": "normal"}
    assert (
        policy_attributes(signal, {**base, "subject_birth_date": days}, date(2025, 1, 1))[
            "age_band"
        ]
        == "12-17"
    )
    missing = policy_attributes(signal, base, date(2025, 1, 1))
    assert missing == {**base, "consent": None, "age_band": None, "minor": None}


def test_policy_attributes_never_include_pii(registry: SchemaRegistry) -> None:
    payload = {
        "subject_bsn": "123456782",
        "subject_name": "Jan de Vries",
        "subject_birth_date": date(1980, 1, 1),
        "address": "Kerkstraat 1, Utrecht",
        "postcode": "3511 AA",
        "debt_kind": "energy",
        "arrears_eur": 600,
        "months_in_arrears": 2,
        "creditor": "Eneco",
        "consent": True,
        "description": "Belt niet terug.",
    }
    attrs = policy_attributes(registry.signal("debt_signal"), payload, date(2025, 1, 1))
    assert attrs == {
        "debt_kind": "energy",
        "months_in_arrears": 2,
        "consent": True,
        "age_band": "23-64",
        "minor": False,
    }
    pii_values = {v for k, v in payload.items() if registry.signal("debt_signal").field(k).pii}
    assert not pii_values & set(attrs.values())
    # a source that records no consent: the policy sees null, never a missing key
    del payload["consent"]
    attrs = policy_attributes(registry.signal("debt_signal"), payload, date(2025, 1, 1))
    assert "consent" in attrs
    assert attrs["consent"] is None


def test_types_without_a_birth_date_have_no_age_attributes(registry: SchemaRegistry) -> None:
    payload = {"category": "waste", "severity": 1, "reporter_type": "business"}
    attrs = policy_attributes(registry.signal("nuisance_report"), payload, date(2025, 1, 1))
    assert attrs == {"category": "waste", "severity": 1, "reporter_type": "business"}


def _set_field(name: str, **meta: Any) -> Any:
    def edit(schema: dict[str, Any]) -> None:
        for field in schema["fields"][1]["type"]["fields"]:
            if field["name"] == name:
                field.update(meta)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_field("subject_bsn", policy=True), "cannot be policy-visible"),
        (_set_field("subject_bsn", pii="passport"), "unknown pii kind"),
        (_set_field("severity", policy="yes"), "must be true or false"),
        (lambda s: s.pop("version"), "'version' must be an int"),
        (lambda s: s["fields"].pop(0), "envelope"),
        (lambda s: s["fields"][1].update(name="body"), "no 'payload' record"),
        (lambda s: s["fields"][1]["type"].update(fields=[{"name": "x"}]), "invalid Avro schema"),
        (_set_field("neighbourhood_code", hub_id=True), "'hub_id' must name the id's kind"),
        (_set_field("subject_bsn", hub_id="bundle_id"), "a hub id is neither pii nor policy"),
        (_set_field("severity", policy=False, hub_id="bundle_id"), "a hub id must be a string"),
    ],
    ids=[
        "pii-and-policy",
        "pii-kind",
        "policy-not-bool",
        "no-version",
        "no-envelope",
        "no-payload",
        "invalid-avro",
        "hub-id-kind",
        "hub-id-and-pii",
        "hub-id-not-a-string",
    ],
)
def test_loader_refuses_broken_schemas(schemas_factory: Any, edit: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        SchemaRegistry.from_dir(schemas_factory("nuisance_report", edit))


def test_loader_needs_the_envelope(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"envelope\.avsc"):
        SchemaRegistry.from_dir(tmp_path)


def test_catalogue_is_in_sync_with_the_schemas(registry: SchemaRegistry) -> None:
    doc = (ROOT / "docs" / "schemas.md").read_text()
    generated = doc.split(BEGIN, 1)[1].split(END, 1)[0]
    assert generated.strip() == render_tables(registry).strip(), (
        "docs/schemas.md is stale: run `python -m signalhub.schema.doc`"
    )
