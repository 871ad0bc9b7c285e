"""Mapping per agency, on the shipped samples and on single records that pin the vocabulary."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from connector_support import FILE_SAMPLES, FIXED_NOW, definitions, manifest, registry, sample_path
from signalhub.connector import CsvSource, JsonLinesSource, Mapper, Source
from signalhub.connector.mapping import is_valid_bsn
from signalhub.errors import ValidationError
from signalhub.schema import codec
from signalhub.wire import derive_signal_id


def _source(name: str, file_name: str) -> Source:
    path = sample_path(file_name)
    if file_name.endswith(".csv"):
        return CsvSource(path, delimiter=definitions()[name].source("csv").delimiter)
    return JsonLinesSource(path)


def _mapper(name: str) -> Mapper:
    return Mapper(definitions()[name], registry(), clock=lambda: FIXED_NOW)


@pytest.mark.parametrize(("name", "file_name"), FILE_SAMPLES, ids=[n for n, _ in FILE_SAMPLES])
def test_every_good_sample_record_maps_validates_and_round_trips(name: str, file_name: str) -> None:
    planted = manifest()[file_name]
    mapper, reg = _mapper(name), registry()
    good = 0
    for item in _source(name, file_name).read():
        if item.ref in planted:
            continue
        assert item.raw is not None, item.ref
        schema, record = mapper.map(item.raw, item.ref)
        assert codec.validate_signal(reg, record).signal_type == schema.signal_type
        _, decoded = codec.decode(reg, codec.encode(reg, schema.avro, record))
        assert decoded["payload"] == record["payload"]
        assert record["envelope"]["source_agency"] == name
        good += 1
    assert good >= 25


def _politie(**changes: str) -> dict[str, str]:
    row = {
        "bvh_nummer": "PL2300-2024000001",
        "incident_code": "f350 ",
        "pleegdatum": "14-03-2024 22:15",
        "bsn_verdachte": "111222333",
        "naam_verdachte": "Jan Janssen",
        "geboortedatum_verdachte": "01-02-1990",
        "adres": "Boschstraat 1, Maastricht",
        "postcode": "6211ab",
        "buurtcode": "BU09350101",
        "omschrijving": "Lawaai",
        "ernst": "3",
        "middel": "",
        "slachtoffer": "",
        "ondermijning": "",
    }
    return row | changes


def test_politie_incident_code_chooses_type_and_category() -> None:
    schema, record = _mapper("politie").map(_politie(), "politie.csv:2")
    envelope, payload = record["envelope"], record["payload"]
    assert schema.signal_type == "nuisance_report"
    assert payload["category"] == "noise"
    assert payload["reporter_type"] == "agency"
    assert payload["severity"] == 3
    assert payload["postcode"] == "6211 AB"
    assert payload["subject_bsn"] == "111222333"
    assert envelope["source_ref"] == "PL2300-2024000001"
    # 22:15 in Maastricht in March (CET, UTC+1) is 21:15 UTC
    assert envelope["observed_at"] == datetime(2024, 3, 14, 21, 15, tzinfo=UTC)
    assert envelope["registered_at"] == FIXED_NOW
    assert envelope["schema_version"] == schema.version


@pytest.mark.parametrize(
    ("code", "signal_type", "expected"),
    [
        ("D200", "drug_signal", {"activity": "dealing", "substance": "cocaïne"}),
        ("D300", "drug_signal", {"activity": "production_site"}),
        ("D600", "drug_signal", {"activity": "recruitment_of_minors"}),
        ("I100", "intimidation_report", {"victim_role": "resident"}),
        (
            "I200",
            "intimidation_report",
            {"victim_role": "entrepreneur", "organised_crime_indication": True},
        ),
    ],
)
def test_politie_code_table(code: str, signal_type: str, expected: dict[str, Any]) -> None:
    row = _politie(incident_code=code, middel="cocaïne", slachtoffer="bewoner")
    schema, record = _mapper("politie").map(row, "x")
    assert schema.signal_type == signal_type
    assert expected.items() <= record["payload"].items()
    if signal_type == "drug_signal":
        assert record["payload"]["subject_birth_date"] == date(1990, 2, 1)


def test_intimidation_without_undermining_flag_defaults_to_false() -> None:
    _, record = _mapper("politie").map(_politie(incident_code="I100", slachtoffer="ambtenaar"), "x")
    assert record["payload"]["organised_crime_indication"] is False
    assert record["payload"]["victim_role"] == "official"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"incident_code": "X999"}, "unknown incident_code 'X999'"),
        ({"incident_code": ""}, "'incident_code' is empty"),
        ({"ernst": "hoog"}, "column 'ernst': expected a whole number"),
        ({"bsn_verdachte": "123456789"}, "eleven test"),
        ({"postcode": "Maastricht"}, "Dutch postcode"),
        ({"pleegdatum": "gisteren"}, "column 'pleegdatum': expected a date/time"),
        ({"incident_code": "I100", "slachtoffer": "toerist"}, "'toerist' is not in its value list"),
    ],
)
def test_politie_bad_values_are_refused_without_quoting_personal_data(
    changes: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        _mapper("politie").map(_politie(**changes), "x")
    for personal in ("123456789", "Jan Janssen", "Boschstraat"):
        assert personal not in str(caught.value)


def test_gemeente_damocles_becomes_a_closure_of_the_occupant() -> None:
    raw = {
        "zaaknummer": "Z-1",
        "zaaktype": "DAMOCLES",
        "registratiedatum": "2024-03-01T09:00:00+01:00",
        "betrokkene": {"bsn": "111222333", "naam": "A. de Vries"},
        "locatie": {"adres": "Akerstraat 5, Maastricht", "postcode": "6221 CA"},
        "ingangsdatum": "2024-03-15",
        "duur_maanden": 6,
    }
    schema, record = _mapper("gemeente").map(raw, "gemeente.jsonl:1")
    payload = record["payload"]
    assert schema.signal_type == "housing_closure"
    assert payload["measure"] == "closure_art13b_opiumwet"
    assert payload["occupant_bsn"] == "111222333"
    assert payload["effective_date"] == date(2024, 3, 15)
    assert payload["duration_months"] == 6
    assert record["envelope"]["observed_at"] == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def test_gemeente_radicalisation_keeps_indicator_codes() -> None:
    raw = {
        "zaaknummer": "Z-2",
        "zaaktype": "radicalisering",
        "registratiedatum": "2024-03-01",
        "zorgniveau": "Hoog",
        "indicatoren": ["IND-ONLINE", " IND-ISOLATIE "],
    }
    _, record = _mapper("gemeente").map(raw, "x")
    assert record["payload"]["concern_level"] == "high"
    assert record["payload"]["indicators"] == ["IND-ONLINE", "IND-ISOLATIE"]


def test_woningcorporatie_rent_arrears_in_dutch_notation_become_whole_euros() -> None:
    raw = {
        "dossiernummer": "WS-1",
        "soort": "HA",
        "datum_melding": "01-03-2024",
        "achterstand_eur": "1.234,50",
        "maanden_achterstand": "3",
    }
    schema, record = _mapper("woningcorporatie").map(raw, "x")
    assert schema.signal_type == "debt_signal"
    assert record["payload"]["debt_kind"] == "rent"
    assert record["payload"]["arrears_eur"] == 1235
    assert record["payload"]["creditor"] == "Woningstichting Maasdal"


def test_schuldhulpverlening_sql_values_keep_their_types() -> None:
    raw = {
        "signaalnummer": "VS-1",
        "signaalsoort": "ENERGIE",
        "signaaldatum": datetime(2024, 7, 1, 10, 0),
        "geboortedatum": date(1970, 5, 6),
        "bedrag_achterstand": 812.5,
        "maanden_achterstand": 2,
        "schuldeiser": "Energie Zuid",
    }
    _, record = _mapper("schuldhulpverlening").map(raw, "schuldsignalen@10")
    assert record["payload"]["debt_kind"] == "energy"
    assert record["payload"]["arrears_eur"] == 813
    assert record["payload"]["subject_birth_date"] == date(1970, 5, 6)
    # naive SQL timestamps are Maastricht local time (CEST in July, UTC+2)
    assert record["envelope"]["observed_at"] == datetime(2024, 7, 1, 8, 0, tzinfo=UTC)


def test_the_signal_id_is_derived_from_agency_type_and_raw_record() -> None:
    raw = _politie()
    schema, record = _mapper("politie").map(raw, "politie.csv:2")
    agency = definitions()["politie"].agency
    expected = derive_signal_id(agency, schema.signal_type, raw)
    assert record["envelope"]["signal_id"] == expected
    _, again = _mapper("politie").map(dict(raw), "politie.csv:7")
    assert again["envelope"]["signal_id"] == expected


def test_source_ref_falls_back_to_the_position_without_a_key() -> None:
    _, record = _mapper("politie").map(_politie(bvh_nummer=""), "politie.csv:9")
    assert record["envelope"]["source_ref"] == "politie.csv:9"


@pytest.mark.parametrize(
    ("bsn", "valid"),
    [("111222333", True), ("123456782", True), ("123456789", False), ("000000000", False)],
)
def test_eleven_test(bsn: str, valid: bool) -> None:
    assert is_valid_bsn(bsn) is valid
