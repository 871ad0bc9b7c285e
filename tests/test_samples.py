"""The sample generator: deterministic, realistic Maastricht data, planted bad records listed."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from connectors.sample_data import PLANTED_PEOPLE, bad_records, generate_samples, sql_rows

from connector_support import SAMPLES
from signalhub.connector import is_valid_bsn

TEXT_FILES = (
    "politie.csv",
    "gemeente.jsonl",
    "woningcorporatie.csv",
    "schuldhulpverlening.jsonl",
    "jeugdzorg.jsonl",
    "onderwijs.csv",
    "manifest.json",
)


def test_generation_is_deterministic_and_matches_the_shipped_samples(tmp_path: Path) -> None:
    generate_samples(tmp_path / "a")
    generate_samples(tmp_path / "b")
    for name in TEXT_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() == (SAMPLES / name).read_bytes(), name


def test_a_different_seed_gives_different_people(tmp_path: Path) -> None:
    generate_samples(tmp_path, seed=1)
    assert (tmp_path / "politie.csv").read_bytes() != (SAMPLES / "politie.csv").read_bytes()


def test_people_and_places_look_like_maastricht() -> None:
    with (SAMPLES / "woningcorporatie.csv").open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter=";")][1:]
    planted_lines = {int(ref.rsplit(":", 1)[1]) for ref in _manifest()["woningcorporatie.csv"]}
    good = [row for line, row in enumerate(rows, start=2) if line not in planted_lines]
    assert len(good) == 36 + 3  # and the three planted people's records
    for row in good:
        assert is_valid_bsn(row[3])
        assert re.fullmatch(r"62[12]\d [A-Z]{2}", row[7])
        assert re.fullmatch(r"BU0935\d{4}", row[8])
        assert row[6].endswith(", Maastricht")


def test_every_file_plants_each_kind_of_bad_record() -> None:
    for name, planted in bad_records(_manifest()).items():
        codes = set(planted.values())
        if name.endswith((".csv", ".jsonl")):
            assert {"undecodable", "invalid", "oversized"} <= codes, name
        else:
            assert codes == {"invalid"}, name


def test_the_sqlite_sample_holds_the_sql_rows() -> None:
    rows, planted = sql_rows()
    with sqlite3.connect(SAMPLES / "schuldhulpverlening.sqlite") as connection:
        ids = [r[0] for r in connection.execute("SELECT mutatie_id FROM schuldsignalen ORDER BY 1")]
    connection.close()
    assert ids == [row["mutatie_id"] for row in rows]
    assert set(planted) <= {str(i) for i in ids}


def test_planted_people_are_the_last_records_and_listed_by_reference_only() -> None:
    manifest = _manifest()
    people = manifest[PLANTED_PEOPLE]
    assert sorted(set(people.values())) == [
        "alert",
        "near-miss-spread",
        "near-miss-two-signals",
        "youth-alert",
        "youth-near-miss-spread",
    ]
    by_file: dict[str, list[int]] = {}
    for ref in people:
        name, line = ref.rsplit(":", 1)
        by_file.setdefault(name, []).append(int(line))
    assert set(by_file) == {
        "politie.csv",
        "woningcorporatie.csv",
        "schuldhulpverlening.jsonl",
        "jeugdzorg.jsonl",
        "onderwijs.csv",
    }
    for name, lines in by_file.items():
        total = len((SAMPLES / name).read_text(encoding="utf-8").splitlines())
        assert sorted(lines) == list(range(total - len(lines) + 1, total + 1)), name
        assert max(int(ref.rsplit(":", 1)[1]) for ref in manifest[name]) < min(lines), name
    assert not re.search(r"(?<!\d)\d{9}(?!\d)", json.dumps(manifest))  # no BSN in it


def _manifest() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads((SAMPLES / "manifest.json").read_text())
    return loaded


def test_the_generator_runs_as_a_module_from_the_repository_root(tmp_path: Path) -> None:
    """``make samples`` runs it so: Faker is a dev dependency, so this is no product command."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "connectors.sample_data", "--out", str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "(40 planted bad records, 5 planted people for the bundler)" in result.stdout
    assert (tmp_path / "politie.csv").read_bytes() == (SAMPLES / "politie.csv").read_bytes()


def test_the_youth_samples_are_about_young_people_and_plant_minors_for_the_bundler() -> None:
    """Youth care and school absence concern children and young adults; the two planted young
    people are minors, reported by youth care, education and the police."""
    with (SAMPLES / "onderwijs.csv").open(encoding="utf-8", newline="") as handle:
        pupils = [row for row in csv.DictReader(handle, delimiter=";")]
    youth = [json.loads(line) for line in (SAMPLES / "jeugdzorg.jsonl").read_text().splitlines()
             if line.startswith("{") and line.endswith("}")]  # fmt: skip
    years = [
        int(row["geboortedatum_leerling"][-4:]) for row in pupils if row["geboortedatum_leerling"]
    ]
    years += [
        int(record["jeugdige"]["geboortedatum"][:4]) for record in youth if "jeugdige" in record
    ]
    assert len(years) > 50
    assert all(2001 <= year <= 2019 for year in years)
    people = _manifest()[PLANTED_PEOPLE]
    for label in ("youth-alert", "youth-near-miss-spread"):
        files = sorted(ref.rsplit(":", 1)[0] for ref, who in people.items() if who == label)
        assert files == ["jeugdzorg.jsonl", "onderwijs.csv", "politie.csv"], label
