"""Agency files that mix good records with one of every kind of bad input.

A byte that is not UTF-8, year 0001, year 2099, an object in a text field, and a record that
leaves out a field with a schema default: each writer returns the reason every bad record must be
rejected with, keyed by its reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector_support import sample_path

__all__ = ["gemeente_file", "politie_file"]


def _gemeente_cases() -> dict[str, dict[str, Any]]:
    """The first sample case of each zaaktype."""
    found: dict[str, dict[str, Any]] = {}
    for line in sample_path("gemeente.jsonl").read_text("utf-8").splitlines():
        try:
            case = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(case, dict):
            found.setdefault(str(case.get("zaaktype")), case)
    return found


def _line(case: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps(case | changes, ensure_ascii=False).encode()


def gemeente_file(path: Path) -> dict[str, str]:
    """Write the mixed file; {reference: expected reason} of each bad line."""
    cases = _gemeente_cases()
    overlast, radical = cases["OVERLAST"], cases["RADICALISERING"]
    no_indicators = {k: v for k, v in radical.items() if k != "indicatoren"}
    lines = [
        _line(overlast),
        _line(overlast, zaaknummer="Z-B1").replace(b"Z-B1", b"Z-B\xff1"),
        _line(overlast, zaaknummer="Z-B2", registratiedatum="0001-01-01T00:00:00"),
        _line(overlast, zaaknummer="Z-B3", registratiedatum="2099-06-01T12:00:00+02:00"),
        _line(overlast, zaaknummer="Z-B4", locatie=overlast["locatie"] | {"adres": {"n": True}}),
        _line(no_indicators, zaaknummer="Z-G2"),
        _line(radical, zaaknummer="Z-G3"),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {
        "gemeente.jsonl:2": "(undecodable): line 2: not valid utf-8 text (byte 0xff at character",
        "gemeente.jsonl:3": "(invalid): column 'registratiedatum': the observation date lies "
        "before 1900-01-01",
        "gemeente.jsonl:4": "(invalid): column 'registratiedatum': the observation date lies "
        "more than 86400 s in the future",
        "gemeente.jsonl:5": "(invalid): column 'locatie.adres': expected text, got an object",
    }


def politie_file(path: Path, *good: dict[str, str]) -> dict[str, str]:
    """Write the mixed CSV, ``good`` rows (column changes to the first sample row) appended;
    {reference: expected reason} of each bad row."""
    header, first, *_ = sample_path("politie.csv").read_bytes().splitlines()
    columns = header.decode().split(";")

    def row(encoding: str = "utf-8", **changes: str) -> bytes:
        cells = first.split(b";")
        for name, value in changes.items():
            cells[columns.index(name)] = value.encode(encoding)
        return b";".join(cells)

    rows = [
        row(),
        row("latin-1", bvh_nummer="PL-B1", omschrijving="Overlast bij café"),  # not UTF-8
        row(bvh_nummer="PL-B2", pleegdatum="01-01-0001 00:00"),
        row(bvh_nummer="PL-B3", pleegdatum="01-01-2099 00:00"),
        row(bvh_nummer="PL-G2", incident_code="I100", slachtoffer="bewoner", ondermijning=""),
        *(row(**changes) for changes in good),
    ]
    path.write_bytes(b"\n".join([header, *rows]) + b"\n")
    return {
        "politie.csv:3": "(undecodable): line 3: not valid utf-8 text (column 'omschrijving', "
        "byte 0xe9 at character 17)",
        "politie.csv:4": "(invalid): column 'pleegdatum': the observation date lies before "
        "1900-01-01",
        "politie.csv:5": "(invalid): column 'pleegdatum': the observation date lies more than "
        "86400 s in the future",
    }
