"""Connector definitions: the shipped ones load and check; broken ones fail with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector_support import CONNECTORS, definitions, registry
from signalhub.connector import Mapper, load_definition, load_definitions
from signalhub.errors import ConnectorError

MINIMAL = """
name = "test"
agency = "politie"
[[sources]]
kind = "csv"
[observed_at]
column = "datum"
"""


def test_the_agency_definitions_load_and_match_the_schemas() -> None:
    loaded = load_definitions(CONNECTORS)
    assert set(loaded) == {
        "politie",
        "gemeente",
        "woningcorporatie",
        "schuldhulpverlening",
        "jeugdzorg",
        "onderwijs",
        "bewoners",
    }
    for definition in loaded.values():
        Mapper(definition, registry())  # checks every type and field against the schemas
        assert definition.token_env == f"SIGNALHUB_INGEST_TOKEN_{definition.name.upper()}"


@pytest.mark.parametrize(
    ("name", "types"),
    [
        ("politie", {"nuisance_report", "drug_signal", "intimidation_report"}),
        (
            "gemeente",
            {"nuisance_report", "housing_closure", "radicalisation_concern", "casework_referral"},
        ),
        ("woningcorporatie", {"nuisance_report", "debt_signal", "housing_closure"}),
        ("schuldhulpverlening", {"debt_signal", "casework_referral"}),
        ("jeugdzorg", {"youth_protection_concern"}),
        ("onderwijs", {"school_absence"}),
        ("bewoners", {"neighbourhood_report"}),
    ],
)
def test_each_agency_produces_its_signal_types(name: str, types: set[str]) -> None:
    assert set(definitions()[name].signal_types()) == types


def test_schuldhulpverlening_polls_a_table_by_watermark() -> None:
    spec = definitions()["schuldhulpverlening"].source("sql")
    assert (spec.table, spec.watermark_column) == ("schuldsignalen", "mutatie_id")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_definition_needs_a_signal_type_or_a_code_table(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="exactly one of 'signal_type' and '\\[dispatch\\]'"):
        load_definition(_write(tmp_path, MINIMAL))


def test_a_misspelt_key_is_refused_with_its_name(tmp_path: Path) -> None:
    text = MINIMAL + 'signal_type = "nuisance_report"\n'
    text = text.replace('kind = "csv"', 'kind = "csv"\ndelimitter = ";"')
    with pytest.raises(ConnectorError, match="delimitter"):
        load_definition(_write(tmp_path, text))


def test_a_sql_source_needs_a_plain_table_name(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'kind = "csv"', 'kind = "sql"\ntable = "x; drop"\nwatermark_column = "id"'
    )
    text += 'signal_type = "nuisance_report"\n'
    with pytest.raises(ConnectorError, match="not a plain SQL identifier"):
        load_definition(_write(tmp_path, text))


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r"test\.toml is not valid TOML"):
        load_definition(_write(tmp_path, "name = "))


def test_a_code_mapped_to_a_type_without_schema_fails_at_start(tmp_path: Path) -> None:
    text = MINIMAL + '[dispatch]\ncolumn = "code"\n[dispatch.codes]\nA1 = { signal_type = "ufo" }\n'
    definition = load_definition(_write(tmp_path, text))
    with pytest.raises(ConnectorError, match="'ufo', which has no schema"):
        Mapper(definition, registry())


def test_a_constant_for_a_field_the_type_lacks_fails_at_start(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[dispatch]\ncolumn = "code"\n[dispatch.codes]\n'
        'A1 = { signal_type = "nuisance_report", set = { colour = "red" } }\n'
    )
    definition = load_definition(_write(tmp_path, text))
    with pytest.raises(ConnectorError, match="no payload field"):
        Mapper(definition, registry())


def test_lower_case_codes_are_refused(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[dispatch]\ncolumn = "code"\n[dispatch.codes]\n'
        'f350 = { signal_type = "nuisance_report" }\n'
    )
    with pytest.raises(ConnectorError, match="upper case"):
        load_definition(_write(tmp_path, text))


def test_asking_for_a_source_kind_the_agency_lacks_says_what_it_has() -> None:
    with pytest.raises(ConnectorError, match="has no sql source \\(it has: csv, http\\)"):
        definitions()["politie"].source("sql")
