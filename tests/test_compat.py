"""Schema evolution: each Avro resolution rule, the version rules, release, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from signalhub.errors import SchemaError, UnknownSchemaError
from signalhub.schema.cli import schemas_group
from signalhub.schema.compat import (
    check_compatibility,
    current_schemas,
    release,
    released_schemas,
    resolution_problems,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
#: The signal types the repository ships (every schema but the shared envelope).
SIGNAL_TYPES = sorted(p.stem for p in SCHEMAS.glob("*.avsc") if p.stem != "envelope")


def rec(*fields: dict[str, Any], name: str = "Thing") -> dict[str, Any]:
    return {"type": "record", "name": f"nl.test.{name}", "fields": list(fields)}


def fld(name: str, avro_type: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": avro_type, **extra}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "nl.test.Kind", "symbols": list(symbols), **extra}


# (reader, writer, expected problem fragment or None when readable)
RULES = [
    pytest.param(rec(fld("a", "int")), rec(fld("a", "int")), None, id="same"),
    pytest.param(
        rec(fld("a", "int"), fld("b", "string", default="x")),
        rec(fld("a", "int")),
        None,
        id="added-field-with-default",
    ),
    pytest.param(
        rec(fld("a", "int"), fld("b", "string")),
        rec(fld("a", "int")),
        "b: not in the written data and has no default",
        id="added-field-without-default",
    ),
    pytest.param(
        rec(fld("a", "int"), fld("b", ["null", "string"], default="x")),
        rec(fld("a", "int")),
        "b: default does not match",
        id="added-field-with-ill-typed-default",
    ),
    pytest.param(
        rec(fld("a", "int")),
        rec(fld("a", "int"), fld("b", "string")),
        None,
        id="writer-has-extra-field",
    ),
    pytest.param(rec(fld("a", "long")), rec(fld("a", "int")), None, id="promotion-int-long"),
    pytest.param(
        rec(fld("a", "double")), rec(fld("a", "float")), None, id="promotion-float-double"
    ),
    pytest.param(
        rec(fld("a", "bytes")), rec(fld("a", "string")), None, id="promotion-string-bytes"
    ),
    pytest.param(
        rec(fld("a", "int")),
        rec(fld("a", "long")),
        "a: type changed from long to int",
        id="demotion",
    ),
    pytest.param(
        rec(fld("a", "string")),
        rec(fld("a", "int")),
        "a: type changed from int to string",
        id="type",
    ),
    pytest.param(
        rec(fld("a", {"type": "long", "logicalType": "timestamp-micros"})),
        rec(fld("a", {"type": "long", "logicalType": "timestamp-millis"})),
        "logical type changed",
        id="logical-type",
    ),
    pytest.param(
        rec(fld("k", enum("a", "b", "c"))), rec(fld("k", enum("a", "b"))), None, id="enum-added"
    ),
    pytest.param(
        rec(fld("k", enum("a"))),
        rec(fld("k", enum("a", "b"))),
        "enum symbols ['b'] unknown to the reader",
        id="enum-removed-without-default",
    ),
    pytest.param(
        rec(fld("k", enum("a", "other", default="other"))),
        rec(fld("k", enum("a", "b", "other"))),
        None,
        id="enum-removed-with-default",
    ),
    pytest.param(
        rec(fld("a", ["null", "string", "int"])),
        rec(fld("a", ["null", "string"])),
        None,
        id="union-widened",
    ),
    pytest.param(
        rec(fld("a", ["null", "string"])),
        rec(fld("a", ["null", "string", "int"])),
        "union branch int has no match",
        id="union-narrowed",
    ),
    pytest.param(
        rec(fld("a", ["null", "string"])), rec(fld("a", "string")), None, id="made-optional"
    ),
    pytest.param(
        rec(fld("a", "string")),
        rec(fld("a", ["null", "string"])),
        "type changed from null to string",
        id="made-required",
    ),
    pytest.param(
        rec(fld("a", {"type": "array", "items": "string"})),
        rec(fld("a", {"type": "array", "items": "int"})),
        "a[]: type changed from int to string",
        id="array-items",
    ),
    pytest.param(rec(fld("a", "int"), name="Other"), rec(fld("a", "int")), "renamed", id="rename"),
    pytest.param(
        rec(fld("b", "int", aliases=["a"])), rec(fld("a", "int")), None, id="renamed-field-alias"
    ),
    pytest.param(
        rec(fld("inner", rec(fld("x", "int"), fld("y", "int"), name="Inner"))),
        rec(fld("inner", rec(fld("x", "int"), name="Inner"))),
        "inner.y: not in the written data",
        id="nested-record",
    ),
]


@pytest.mark.parametrize(("reader", "writer", "problem"), RULES)
def test_resolution_rules(reader: Any, writer: Any, problem: str | None) -> None:
    problems = resolution_problems(reader, writer)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problem in problems[0]


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, folder)
    return folder


def edit_schema(folder: Path, signal_type: str, edit: Any) -> None:
    path = folder / f"{signal_type}.avsc"
    schema = json.loads(path.read_text())
    edit(schema)
    path.write_text(json.dumps(schema, indent=2))


def payload_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = schema["fields"][1]["type"]["fields"]
    return fields


def newest_released(folder: Path, signal_type: str) -> int:
    return max(released_schemas(folder)[signal_type])


#: signal types that evolved past v1 -> payload fields added since v1 (all optional, default null).
#: casework_alert v2 added none: its bundle_id became a hub id (delivered per domain).
EVOLVED = {"debt_signal": {"consent"}, "casework_referral": {"consent"}, "casework_alert": set()}
#: Field attributes a version may change without changing what is on the wire.
_DESCRIPTIVE = ("doc", "hub_id")


def test_the_repository_schemas_are_released_and_compatible() -> None:
    assert check_compatibility(SCHEMAS) == []
    released = released_schemas(SCHEMAS)
    current = current_schemas(SCHEMAS)
    assert set(released) == set(current)
    for signal_type, schema in current.items():
        versions = sorted(released[signal_type])
        assert versions == list(range(1, len(versions) + 1)), signal_type  # no gaps
        assert schema["version"] == versions[-1], signal_type
        assert released[signal_type][versions[-1]] == schema  # newest release is today's schema
    assert {t for t, v in released.items() if max(v) > 1} == set(EVOLVED)


@pytest.mark.parametrize("signal_type", sorted(EVOLVED))
def test_evolved_types_only_added_optional_fields_since_v1(signal_type: str) -> None:
    released = released_schemas(SCHEMAS)[signal_type]
    first = {f["name"]: f for f in payload_fields(released[1])}
    now = {f["name"]: f for f in payload_fields(current_schemas(SCHEMAS)[signal_type])}
    assert set(now) - set(first) == EVOLVED[signal_type]
    assert {k: _wire(v) for k, v in now.items() if k in first} == {  # v1 fields untouched
        k: _wire(v) for k, v in first.items()
    }
    for name in EVOLVED[signal_type]:
        assert now[name]["default"] is None
        assert now[name]["type"][0] == "null"


def _wire(field: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in field.items() if k not in _DESCRIPTIVE}


def test_a_change_without_a_version_bump_is_refused(schemas: Path) -> None:
    edit_schema(schemas, "nuisance_report", lambda s: payload_fields(s)[0].update(doc="Changed."))
    assert check_compatibility(schemas) == [
        'nuisance_report: changed without bumping version 1 — set "version": 2 and run '
        "`signalhub schemas release nuisance_report`"
    ]


def test_an_envelope_change_is_a_change_of_every_type(schemas: Path) -> None:
    envelope = json.loads((schemas / "envelope.avsc").read_text())
    envelope["fields"].append({"name": "trace_id", "type": ["null", "string"], "default": None})
    (schemas / "envelope.avsc").write_text(json.dumps(envelope))
    current = current_schemas(schemas)
    assert len(current) == len(SIGNAL_TYPES)
    assert check_compatibility(schemas) == [
        f"{t}: changed without bumping version {s['version']} — "
        f'set "version": {s["version"] + 1} and run `signalhub schemas release {t}`'
        for t, s in sorted(current.items())
    ]


def test_a_compatible_bumped_change_passes_and_can_be_released(schemas: Path) -> None:
    def add_field(schema: dict[str, Any]) -> None:
        schema["version"] = 2
        payload_fields(schema).append(
            {"name": "repeat_count", "type": ["null", "int"], "default": None, "doc": "Repeats."}
        )

    edit_schema(schemas, "nuisance_report", add_field)
    assert check_compatibility(schemas) == []
    path = release(schemas, "nuisance_report")
    assert path.name == "nuisance_report.v2.avsc"
    assert sorted(released_schemas(schemas)["nuisance_report"]) == [1, 2]
    assert release(schemas, "nuisance_report") == path  # idempotent
    assert check_compatibility(schemas) == []


def test_an_added_field_without_default_breaks_old_data(schemas: Path) -> None:
    def add_field(schema: dict[str, Any]) -> None:
        schema["version"] = 2
        payload_fields(schema).append({"name": "repeat_count", "type": "int"})

    edit_schema(schemas, "nuisance_report", add_field)
    problems = check_compatibility(schemas)
    assert problems == [
        "nuisance_report: cannot read data written with v1: payload.repeat_count: not in the "
        "written data and has no default — give the field a default or undo the change"
    ]
    with pytest.raises(SchemaError, match="repeat_count"):
        release(schemas, "nuisance_report")
    assert not (schemas / "released" / "nuisance_report.v2.avsc").exists()


def test_a_removed_required_field_breaks_old_readers(schemas: Path) -> None:
    def drop_severity(schema: dict[str, Any]) -> None:
        schema["version"] = 2
        schema["fields"][1]["type"]["fields"] = [
            f for f in payload_fields(schema) if f["name"] != "severity"
        ]

    edit_schema(schemas, "drug_signal", drop_severity)
    (problem,) = check_compatibility(schemas)
    assert problem.startswith(
        "drug_signal: v1 readers cannot read data written now: payload.severity"
    )


def test_a_removed_enum_symbol_breaks_old_data(schemas: Path) -> None:
    newest = newest_released(schemas, "debt_signal")
    assert newest >= 2  # checks against every released version, not only v1

    def drop_symbol(schema: dict[str, Any]) -> None:
        schema["version"] = newest + 1
        kind = next(f for f in payload_fields(schema) if f["name"] == "debt_kind")
        kind["type"]["symbols"].remove("water")

    edit_schema(schemas, "debt_signal", drop_symbol)
    problems = check_compatibility(schemas)
    assert len(problems) == newest
    for number, problem in enumerate(problems, start=1):
        assert problem.startswith(f"debt_signal: cannot read data written with v{number}: ")
        assert "['water']" in problem


def test_a_version_below_the_released_one_is_refused(schemas: Path) -> None:
    old = newest_released(schemas, "debt_signal")
    new = old + 1
    edit_schema(schemas, "debt_signal", lambda s: s.update(version=new))
    assert release(schemas, "debt_signal").name == f"debt_signal.v{new}.avsc"
    assert newest_released(schemas, "debt_signal") == new
    edit_schema(schemas, "debt_signal", lambda s: s.update(version=old))
    problems = check_compatibility(schemas)
    assert problems == [
        f'debt_signal: version {old} is older than released v{new} — set "version" to '
        f"{new + 1} for a change, or restore v{new}"
    ]


def test_unreleased_and_vanished_types_are_reported(schemas: Path) -> None:
    released = sorted((schemas / "released").glob("debt_signal.v*.avsc"))
    assert len(released) == newest_released(SCHEMAS, "debt_signal")
    for path in released:
        path.unlink()
    (schemas / "drug_signal.avsc").unlink()
    assert check_compatibility(schemas) == [
        "debt_signal: never released — run `signalhub schemas release debt_signal`",
        "drug_signal: released as v1 but schemas/drug_signal.avsc is missing — restore it "
        "(a released type is never removed)",
    ]


def test_release_of_an_unknown_type_is_refused(schemas: Path) -> None:
    with pytest.raises(UnknownSchemaError):
        release(schemas, "weather_report")


def test_a_tampered_released_file_is_refused(schemas: Path) -> None:
    path = schemas / "released" / "housing_closure.v1.avsc"
    schema = json.loads(path.read_text())
    schema["version"] = 3
    path.write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match="'version' inside is not 1"):
        check_compatibility(schemas)


def test_cli_check_passes_on_the_repository() -> None:
    result = CliRunner().invoke(schemas_group, ["check", "--schemas-dir", str(SCHEMAS)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK")


def test_cli_check_prints_each_problem_and_exits_1(schemas: Path) -> None:
    edit_schema(schemas, "nuisance_report", lambda s: payload_fields(s)[0].update(doc="x"))
    edit_schema(schemas, "drug_signal", lambda s: payload_fields(s)[0].update(doc="x"))
    result = CliRunner().invoke(schemas_group, ["check", "--schemas-dir", str(schemas)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Error: drug_signal: changed without bumping version 1 — ")
    assert lines[1].startswith("Error: nuisance_report: changed without bumping version 1 — ")


def test_cli_list_and_release(schemas: Path) -> None:
    runner = CliRunner()
    listing = runner.invoke(schemas_group, ["list", "--schemas-dir", str(schemas)])
    assert listing.exit_code == 0
    assert len(listing.output.splitlines()) == len(SIGNAL_TYPES)
    assert "signals.drug_signal" in listing.output

    edit_schema(schemas, "drug_signal", lambda s: s.update(version=2))
    done = runner.invoke(schemas_group, ["release", "drug_signal", "--schemas-dir", str(schemas)])
    assert done.exit_code == 0, done.output
    assert (schemas / "released" / "drug_signal.v2.avsc").is_file()

    refused = runner.invoke(schemas_group, ["release", "nope", "--schemas-dir", str(schemas)])
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: nope: no schemas/nope.avsc")


def test_cli_doc_regenerates_a_stale_catalogue(schemas: Path) -> None:
    docs = schemas.parent / "docs"
    docs.mkdir()
    shutil.copy(SCHEMAS.parent / "docs" / "schemas.md", docs / "schemas.md")
    runner = CliRunner()
    args = ["doc", "--schemas-dir", str(schemas)]
    assert runner.invoke(schemas_group, [*args, "--check"]).exit_code == 0

    edit_schema(schemas, "drug_signal", lambda s: payload_fields(s)[0].update(doc="Changed."))
    stale = runner.invoke(schemas_group, [*args, "--check"])
    assert stale.exit_code == 1
    assert "stale" in stale.output
    assert runner.invoke(schemas_group, args).exit_code == 0
    assert "| Changed. |" in (docs / "schemas.md").read_text()
    assert runner.invoke(schemas_group, [*args, "--check"]).exit_code == 0


def test_a_deleted_released_version_is_reported(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    (copy / "released" / "debt_signal.v1.avsc").unlink()
    problems = check_compatibility(copy)
    assert problems == [
        "debt_signal: released v1 missing from schemas/released/ — restore it: data "
        "written with every released version must stay readable"
    ]
