"""Generalisation (age band, postcode area, neighbourhood) and free-text scrubbing, driven by the
schema's pii metadata and the decision's ``generalise`` object."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from pseudonym_support import BSN, KEY, NOW, drug, enforcement, nuisance, registry, source_record
from signalhub.audit import record as audit_record
from signalhub.enforcer.generalise import (
    WITHHELD_MARK,
    applicable,
    generalise_value,
    is_bsn,
    postcode_area,
    scrub_free_text,
)
from signalhub.enforcer.projection import plan_projection, project_payload
from signalhub.errors import PolicyError
from signalhub.policy.decision import Decision, parse_decisions
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec

TODAY = date(2026, 6, 1)


def _decision(**changes: object) -> Decision:
    base = Decision(True, ("severity",), ("subject_bsn",), ("ok",), "v1", "gemeente", "basis")
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("111222333", True), ("123456782", True), ("123456789", False), ("000000000", False),
     ("12345678", False)],
)  # fmt: skip
def test_eleven_test(digits: str, valid: bool) -> None:
    assert is_bsn(digits) is valid


def test_methods_apply_only_to_their_pii_kinds() -> None:
    assert applicable("age_band", "birth_date")
    assert applicable("postcode_area", "address")
    assert applicable("neighbourhood", "postcode")
    assert not applicable("age_band", "address")
    assert not applicable("postcode_area", "bsn")
    assert not applicable("postcode_area", None)


@pytest.mark.parametrize(
    ("method", "field", "expected"),
    [
        ("age_band", "subject_birth_date", "23-64"),
        ("postcode_area", "address", "6226"),
        ("postcode_area", "postcode", "6226"),
        ("neighbourhood", "address", "BU09350905"),
    ],
)
def test_generalised_values(method: str, field: str, expected: str) -> None:
    payload = drug()["payload"]
    assert generalise_value(method, registry().signal("drug_signal"), field, payload, TODAY) == (
        expected
    )


def test_postcode_area_of_an_address_without_postcode_field() -> None:
    payload = drug(postcode=None, address="Boschstraat 12, 6211 AX Maastricht")["payload"]
    schema = registry().signal("drug_signal")
    assert generalise_value("postcode_area", schema, "address", payload, TODAY) == "6211"
    assert postcode_area("no postcode here") is None
    assert generalise_value("neighbourhood", schema, "address", drug(neighbourhood_code="x")[
        "payload"], TODAY) is None  # fmt: skip


def test_minor_gets_a_minor_band() -> None:
    payload = drug(subject_birth_date=date(2011, 6, 2))["payload"]
    schema = registry().signal("drug_signal")
    assert generalise_value("age_band", schema, "subject_birth_date", payload, TODAY) == "12-17"


def test_plan_puts_generalised_fields_apart_and_withholds_misfits() -> None:
    schema = registry().signal("drug_signal")
    decision = _decision(
        fields=("severity", "address"),
        generalise={"address": "postcode_area", "subject_birth_date": "age_band",
                    "activity": "age_band"},
    )  # fmt: skip
    plan = plan_projection(schema, decision)
    assert plan.generalised == (("subject_birth_date", "age_band"), ("address", "postcode_area"))
    assert "address" not in plan.clear
    assert "activity" in plan.withheld  # age_band does not fit an enum: withheld, not clear


def test_projected_payload_and_view_schema_type_generalised_fields_as_strings() -> None:
    schema = registry().signal("drug_signal")
    decision = _decision(generalise={"subject_birth_date": "age_band", "address": "neighbourhood"})
    plan = plan_projection(schema, decision)
    view = project_payload(schema, plan, drug()["payload"], Pseudonymiser(KEY), "gemeente",
                           today=TODAY)  # fmt: skip
    assert view == {
        "subject_bsn": Pseudonymiser(KEY).pseudonym("gemeente", "bsn", BSN),
        "subject_birth_date": "23-64",
        "address": "BU09350905",
        "severity": 5,
    }
    avro = registry().view_schema("drug_signal", plan.clear, plan.pseudonymised,
                                  dict(plan.generalised))  # fmt: skip
    payload = next(f for f in avro["fields"] if f["name"] == "payload")["type"]
    types = {f["name"]: f["type"] for f in payload["fields"]}
    assert types["subject_birth_date"] == ["null", "string"]
    assert types["address"] == ["null", "string"]
    plain = registry().view_schema("drug_signal", plan.clear, plan.pseudonymised)
    assert plain["name"] != avro["name"]


def test_free_text_scrubbed_of_bsns_and_hidden_identifiers() -> None:
    text = "Jan de Vries, bsn 1112.22.333, woont Boschstraat 12; factuur 123456789."
    scrubbed = scrub_free_text(
        text,
        lambda digits: f"<{digits[-3:]}>",
        [("jan de vries", "pn1.x"), ("Boschstraat 12", None)],
    )
    assert scrubbed == f"pn1.x, bsn <333>, woont {WITHHELD_MARK}; factuur 123456789."


def test_clear_free_text_reaches_the_police_without_the_bsn() -> None:
    record = drug(description=f"Dewi van der Klein, BSN {BSN}, Tongerseweg 177A, Maastricht")
    outputs = enforcement().process(source_record(record))
    politie = next(o for o in outputs if o.topic == "deliveries.politie")
    description = codec.decode(registry(), politie.value)[1]["payload"]["description"]
    assert BSN not in description
    assert Pseudonymiser(KEY).pseudonym("politie", "bsn", BSN) in description
    assert "Tongerseweg 177A" in description  # the police may see the address in clear


def test_shipped_policy_gives_the_landlord_the_postcode_area_not_the_address() -> None:
    outputs = enforcement().process(source_record(nuisance()))
    landlord = next(o for o in outputs if o.topic == "deliveries.woningcorporatie")
    _schema, record = codec.decode(registry(), landlord.value)
    assert record["payload"]["address"] == "6225"
    assert "postcode" not in record["payload"]
    assert "Nazarethweg" not in landlord.value.decode("utf-8", "replace")
    entries = [codec.decode(registry(), o.value)[1] for o in outputs if o.topic == "audit"]
    audit_rows = [decision for entry in entries for decision in audit_record.decisions_in(entry)]
    landlord_audit = next(a for a in audit_rows if a["subscriber"] == "woningcorporatie")
    assert landlord_audit["fields_generalised"] == ["address=postcode_area"]
    assert "address" not in landlord_audit["fields_clear"]
    assert NOW.date() == TODAY


def test_decision_contract_parses_generalise_and_refuses_nonsense() -> None:
    entry = {"allow": True, "fields": ["severity"], "pseudonymise": ["subject_bsn"],
             "reasons": [], "domain": "gemeente", "legal_basis": "b"}  # fmt: skip
    assert parse_decisions({"s": entry}, ["s"], "v")["s"].generalise == {}
    with_gen = entry | {"generalise": {"address": "postcode_area"}}
    assert parse_decisions({"s": with_gen}, ["s"], "v")["s"].generalise == {
        "address": "postcode_area"
    }
    with pytest.raises(PolicyError, match="generalise"):
        parse_decisions({"s": entry | {"generalise": {"address": "street"}}}, ["s"], "v")
    with pytest.raises(PolicyError, match="generalised and pseudonymised"):
        parse_decisions({"s": entry | {"generalise": {"subject_bsn": "postcode_area"}}}, ["s"], "v")
    denied = entry | {"allow": False, "generalise": {"address": "postcode_area"}}
    assert parse_decisions({"s": denied}, ["s"], "v")["s"].generalise == {}


def test_decision_contract_takes_the_envelope_timestamp_methods_the_policy_allows() -> None:
    """The Rego accepts ``{"envelope.observed_at": "hour"}``; the contract once refused it, so
    such an agreement denied and parked every signal."""
    times = {"envelope.observed_at": "hour", "envelope.registered_at": "day"}
    entry = {"allow": True, "fields": ["severity"], "pseudonymise": [], "reasons": [],
             "domain": "gemeente", "legal_basis": "b", "generalise": times}  # fmt: skip
    assert parse_decisions({"s": entry}, ["s"], "v")["s"].generalise == times
    for wrong in ({"envelope.observed_at": "age_band"}, {"address": "hour"}):
        with pytest.raises(PolicyError, match="generalise"):
            parse_decisions({"s": entry | {"generalise": wrong}}, ["s"], "v")
