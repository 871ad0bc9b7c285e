"""``signalhub demo`` as a user runs it: a separate process, the embedded stack, nothing left over.

Each run starts its own broker and enforcer worker from a state directory of its own; every
process that carries that state directory in its environment belongs to the run, which is how
the test tells that the command stopped everything it started.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from connectors.sample_data import bad_records
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bad_input_support import gemeente_file, politie_file
from hub_support import gemeente_case, new_person, politie_row, valid_bsn, write_csv, write_jsonl
from linkability_support import Granted, cross_domain_links, granted_paths
from matrix_support import assert_matrix_predicts
from process_support import alive
from signalhub.config import load_settings
from signalhub.connector import is_valid_bsn
from signalhub.enforcer.generalise import find_bsns
from signalhub.subscriptions import load_subscriptions, subscribers

pytestmark = pytest.mark.integration

SETTINGS = load_settings()
SAMPLES = SETTINGS.connectors_dir / "samples"
SUBSCRIBERS = subscribers(load_subscriptions(SETTINGS.subscriptions_file))
DEMO_TIMEOUT_S = 240


def _processes_marked(marker: str) -> set[int]:
    """Live processes (not zombies) whose environment contains ``marker``."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.add(int(entry.name))
    return found


def _run_demo(
    tmp_path: Path, *args: str, master_key: bytes | None = None, verbose: bool = False
) -> tuple[subprocess.CompletedProcess[str], set[int]]:
    """Run ``signalhub demo ARGS``; returns the result and the pids it started along the way."""
    state = tmp_path / "state"
    marker = f"SIGNALHUB_STATE_DIR={state}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALHUB_")}
    env["SIGNALHUB_STATE_DIR"] = str(state)
    if master_key is not None:
        env["SIGNALHUB_MASTER_KEY"] = master_key.hex()
    process = subprocess.Popen(
        [sys.executable, "-m", "signalhub", *(["-vv"] if verbose else []), "demo", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            children.update(_processes_marked(marker) - {process.pid})
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        stdout, stderr = process.communicate(timeout=DEMO_TIMEOUT_S)
    finally:
        done.set()
        watcher.join(5)
        if process.poll() is None:
            process.kill()
            process.wait()
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return result, children


def _assert_nothing_left(tmp_path: Path, children: set[int]) -> None:
    """The broker and the enforcer worker were seen running, and are gone now."""
    marker = f"SIGNALHUB_STATE_DIR={tmp_path / 'state'}"
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children if alive(pid)}
    assert len(children) >= 2, "the demo's broker and enforcer were never seen"
    deadline = time.monotonic() + 5  # the kernel may take a moment to reap
    while _processes_marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_marked(marker) == set(), f"left behind: {commands}"


def _assert_no_value_links_domains(
    audit: list[dict[str, Any]], delivered: dict[str, list[dict[str, Any]]], min_pairs: int = 50
) -> None:
    """The demo's deliveries of one signal in different domains share no linking value."""
    by_delivery = {row["delivery_id"]: row for rows in delivered.values() for row in rows}
    by_signal: dict[str, list[Any]] = {}
    granted: Granted = {}
    for row in audit:
        if row["outcome"] == "allow" and row["delivery_id"] in by_delivery:
            by_signal.setdefault(row["signal_id"], []).append(
                by_delivery[row["delivery_id"]]["record"]
            )
            granted[(row["signal_id"], row["subscriber"])] = granted_paths(
                row["fields_clear"], row["fields_generalised"]
            )
    pairs, links, _ = cross_domain_links(by_signal, granted)
    assert pairs > min_pairs
    assert links == [], f"{len(links)} linking values in the demo output, e.g. {links[:5]}"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _bsns_in(paths: list[Path]) -> set[str]:
    """Every nine-digit number in the files that passes the eleven test."""
    found: set[str] = set()
    for path in paths:
        text = path.read_bytes().decode("utf-8", "replace")
        found |= {m for m in re.findall(r"(?<!\d)\d{9}(?!\d)", text) if is_valid_bsn(m)}
    return found


def _sample_bsns() -> set[str]:
    import sqlite3

    bsns = _bsns_in([SAMPLES / name for name in os.listdir(SAMPLES) if name != "manifest.json"])
    with sqlite3.connect(SAMPLES / "schuldhulpverlening.sqlite") as connection:
        rows = connection.execute("SELECT bsn FROM schuldsignalen WHERE bsn IS NOT NULL")
        bsns |= {str(bsn) for (bsn,) in rows if is_valid_bsn(str(bsn))}
    return bsns


def _expected_rejects() -> set[tuple[str, str]]:
    manifest: dict[str, dict[str, str]] = json.loads((SAMPLES / "manifest.json").read_text())
    expected: set[tuple[str, str]] = set()
    for source, planted in bad_records(manifest).items():
        table = source.split(" ")[0]
        for ref, code in planted.items():
            expected.add((ref if ":" in ref else f"{table}@{ref}", code))
    return expected


def _assert_residents_reports_as_agreed(delivered: dict[str, list[dict[str, Any]]]) -> None:
    """The meldpunt's sample reports: every good one to the municipality, those pointing at
    crime to the police, to nobody else, never with the free text or a reporter."""
    manifest: dict[str, dict[str, str]] = json.loads((SAMPLES / "manifest.json").read_text())
    bad = {int(ref.rsplit(":", 1)[1]) for ref in manifest["bewoners.jsonl"]}
    lines = (SAMPLES / "bewoners.jsonl").read_text("utf-8").splitlines()
    kinds = [json.loads(line)["soort"] for n, line in enumerate(lines, 1) if n not in bad]
    reports = {
        name: [row["record"] for row in rows if row["signal_type"] == "neighbourhood_report"]
        for name, rows in delivered.items()
    }
    assert len(reports.pop("gemeente")) == len(kinds) == 30
    police = reports.pop("politie")
    assert len(police) == len([kind for kind in kinds if kind != "overlast"])
    assert {record["payload"]["category"] for record in police} == {
        "drug_dealing_spot", "intimidation", "cannabis_cultivation"
    }  # fmt: skip
    assert all(rows == [] for rows in reports.values())
    for record in police:
        assert record["payload"].get("description") is None
        assert "description" in record["delivery"]["withheld"]


def _key_forms(key: bytes) -> list[str]:
    return [
        key.hex(),
        key.hex().upper(),
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
    ]


def _assert_no_key_in(logs: str, master: bytes) -> None:
    """Neither the master key nor any pseudonym key derived from it, in any common encoding."""
    domains = {"signalhub-audit", "zvh-casework", *SUBSCRIBERS}
    secrets = _key_forms(master)
    for domain in domains:
        info = b"signalhub/pseudonym/" + domain.encode() + b"/k1"
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)
        secrets += _key_forms(derived)
    for secret in secrets:
        assert secret not in logs
    assert master.hex()[:16] not in logs  # not even a prefix


def test_demo_writes_every_output_leaves_nothing_running_and_repeats_in_the_same_state_dir(
    tmp_path: Path,
) -> None:
    """A demo over the samples with ``--out``, then a second one in the same state directory.

    One test for both because each run is a whole demo (~18 s of the suite). The first run is
    verbose with a known master key, so it also shows that no key reaches any log.
    """
    out = tmp_path / "out"
    master = bytes(range(200, 232))

    first, children = _run_demo(tmp_path, "--out", str(out), master_key=master, verbose=True)

    assert first.returncode == 0, first.stderr[-3000:]
    _assert_nothing_left(tmp_path, children)
    logs = first.stdout + first.stderr
    logs += "".join(p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*.log"))
    assert "enforcer" in logs
    assert len(logs) > 1000
    _assert_no_key_in(logs, master)
    for name in [*SUBSCRIBERS, "dlq", "rejects", "audit"]:
        assert (out / f"{name}.jsonl").is_file(), name
    for subscriber in SUBSCRIBERS:
        assert f"== {subscriber}: " in first.stdout
    for section in ("== dead-letter topic:", "== rejects (kept by the connectors):", "== summary"):
        assert section in first.stdout
    assert "signals published" in first.stdout

    bsns = _sample_bsns()
    assert len(bsns) > 50
    subscriber_files = [out / f"{name}.jsonl" for name in SUBSCRIBERS]
    assert _bsns_in(subscriber_files) & bsns == set(), "a sample BSN reached a subscriber"
    delivered = {name: _lines(out / f"{name}.jsonl") for name in SUBSCRIBERS}
    assert sum(len(rows) for rows in delivered.values()) > 0
    for name, rows in delivered.items():
        assert all(row["record"]["delivery"]["subscriber"] == name for row in rows)
        ids = [row["delivery_id"] for row in rows]
        assert len(ids) == len(set(ids)), f"{name}.jsonl holds a delivery twice"

    rejects = _lines(out / "rejects.jsonl")
    assert {(row["ref"], row["code"]) for row in rejects} == _expected_rejects()
    assert all(row["reason"] for row in rejects)
    dead = _lines(out / "dlq.jsonl")
    assert [row["reason"] for row in dead] == ["undecodable"]

    audit = _lines(out / "audit.jsonl")
    allowed = {row["delivery_id"] for row in audit if row["outcome"] == "allow"}
    assert allowed == {row["delivery_id"] for rows in delivered.values() for row in rows}
    assert {row["outcome"] for row in audit} >= {"allow", "deny"}
    _assert_no_value_links_domains(audit, delivered)
    _assert_residents_reports_as_agreed(delivered)
    # What `policy matrix` says each subscriber gets is what each got, field by field.
    assert assert_matrix_predicts(delivered) > 1000

    # The planted patterns: exactly one casework alert each for the adult (politie,
    # woningcorporatie, schuldhulpverlening) and the young person (jeugdzorg, onderwijs,
    # politie), delivered to zvh, without content.
    section = first.stdout.split("== casework alerts (bundler): ", 1)[1].split("\n== ", 1)[0]
    count, *listed = section.splitlines()
    assert count == "2"
    assert len(listed) == 2
    adult, young = sorted(listed, key=lambda line: "youth_care" in line)
    assert "rule multi_agency_90_days" in adult
    assert "3 signals from politie, schuldhulpverlening, woningcorporatie" in adult
    assert "(debt_signal, nuisance_report)" in adult
    assert "rule youth_care_education_police_90_days" in young
    assert "3 signals from jeugdzorg, onderwijs, politie" in young
    assert "(drug_signal, school_absence, youth_protection_concern)" in young
    assert "2 casework alerts" in first.stdout
    alerts = [row for row in delivered["zvh"] if row["signal_type"] == "casework_alert"]
    assert len(alerts) == 2
    payloads = sorted((row["record"]["payload"] for row in alerts), key=lambda p: p["agencies"])
    assert [p["agencies"] for p in payloads] == [
        ["jeugdzorg", "onderwijs", "politie"],
        ["politie", "schuldhulpverlening", "woningcorporatie"],
    ]
    assert [p["signal_count"] for p in payloads] == [3, 3]
    for name in SUBSCRIBERS:
        if name != "zvh":
            assert all(row["signal_type"] != "casework_alert" for row in delivered[name])
    assert {row["delivery_id"] for row in alerts} <= allowed
    _assert_youth_signals_delivered_and_withheld_per_policy(first.stdout, audit, delivered)

    second, children = _run_demo(tmp_path)

    assert second.returncode == 0, second.stderr[-3000:]
    _assert_nothing_left(tmp_path, children)
    summary = [line for line in first.stdout.splitlines() if "decisions:" in line]
    assert summary
    assert summary[0] in second.stdout
    assert "== casework alerts (bundler): 2" in second.stdout


def _assert_youth_signals_delivered_and_withheld_per_policy(
    stdout: str, audit: list[dict[str, Any]], delivered: dict[str, list[dict[str, Any]]]
) -> None:
    """Youth care's and education's signals (issue 19): the demo's accounting balances, each
    type is both delivered and withheld, and only to the subscribers its agreements name."""
    summary = stdout.split("== summary", 1)[1]
    read, published, rejected = (
        int(re.search(rf"(\d+) {what}", summary).group(1))  # type: ignore[union-attr]
        for what in ("records read", "signals published", "rejected")
    )
    assert read == published + rejected
    receivers = {
        "youth_protection_concern": {"zvh", "gemeente", "politie"},
        "school_absence": {"gemeente", "zvh", "jeugdzorg"},
    }
    for signal_type, named in receivers.items():
        rows = [row for row in audit if row["signal_type"] == signal_type]
        outcomes = {row["outcome"] for row in rows}
        assert outcomes == {"allow", "deny"}, signal_type
        assert {row["subscriber"] for row in rows if row["outcome"] == "allow"} == named
        got = {
            name
            for name, items in delivered.items()
            for row in items
            if row["signal_type"] == signal_type
        }
        assert got == named, signal_type
    om = [row for row in audit if row["subscription_id"] == "om-jeugd"]
    assert om
    assert {row["outcome"] for row in om} == {"deny"}
    for agency, records in (("jeugdzorg", "38 read = 32 published + 6 rejected"),
                            ("onderwijs", "37 read = 32 published + 5 rejected")):  # fmt: skip
        rows = [row for row in audit if row["source_agency"] == agency]
        allowed = sum(row["outcome"] == "allow" for row in rows)
        withheld = len(rows) - allowed
        line = f"{agency}: {records}; {allowed} delivered, {withheld} withheld by policy"
        assert f"   {line}\n" in stdout
    # The per-source lines (connectors and the bundler) add up to the summary's decisions.
    section = stdout.split("== per source: ", 1)[1].split("\n== ", 1)[0]
    counted = re.findall(r"(\d+) delivered, (\d+) withheld by policy", section)
    assert "bundler: 2 casework alerts; 2 delivered, 0 withheld by policy" in section
    assert sum(int(a) + int(d) for a, d in counted) == len(audit)


def test_demo_with_an_input_directory_runs_those_files_only(tmp_path: Path) -> None:
    people = [new_person() for _ in range(3)]
    inputs = tmp_path / "input"
    inputs.mkdir()
    write_csv(
        inputs / "politie.csv",
        [politie_row(people[0], "F354", ernst="5"), politie_row(people[1], "D300", ernst="5")],
        extra_lines=["PL-T-bad;F350;too;few;columns"],
    )
    write_jsonl(inputs / "gemeente.jsonl", [gemeente_case(people[2])])
    out = tmp_path / "out"

    result, children = _run_demo(tmp_path, "--input", str(inputs), "--out", str(out))

    assert result.returncode == 0, result.stderr[-3000:]
    _assert_nothing_left(tmp_path, children)
    rejects = _lines(out / "rejects.jsonl")
    assert [(row["ref"], row["code"]) for row in rejects] == [("politie.csv:4", "undecodable")]
    assert _lines(out / "dlq.jsonl") == []
    audit = _lines(out / "audit.jsonl")
    assert len({row["signal_id"] for row in audit}) == 3
    assert "3 signals published" in result.stdout
    assert "== casework alerts (bundler): 0" in result.stdout
    texts = "".join((out / f"{name}.jsonl").read_text() for name in SUBSCRIBERS)
    for person in people:
        assert person.bsn not in texts
    assert people[0].name in (out / "politie.jsonl").read_text()  # police may see the name
    assert people[0].name not in (out / "gemeente.jsonl").read_text()  # the municipality not


def _renderings(bsn: str) -> list[str]:
    """How people write a BSN in free text: separators of every kind, full-width digits."""
    groups = (bsn[:3], bsn[3:6], bsn[6:])
    return [
        "/".join(groups),
        "  ".join(groups),
        "\u00a0".join(groups),
        "_".join(groups),
        bsn.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"}),
    ]


def _bsn_below_100_million() -> str:
    """A valid BSN with a leading zero: written without it, it has eight digits."""
    while True:
        head = "0" + valid_bsn()[1:8]
        check = sum(int(d) * w for d, w in zip(head, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return head + str(check)


def test_demo_over_hostile_input_leaks_no_bsn_links_no_domains_and_rejects_each_bad_record(
    tmp_path: Path,
) -> None:
    """Every kind of bad input the issue named, through ``demo --input --out`` as users run it:
    BSNs written with separators, in full-width digits and in the eight-digit form in the
    police's free text (which the police receive in clear, scrubbed), plus records with
    non-UTF-8 bytes, out-of-range dates and nested values. The run completes, every bad record is
    in the rejects with its reason, no planted BSN reaches any subscriber however written, no
    value links two domains, and the matrix predicts every delivered field."""
    inputs = tmp_path / "input"
    inputs.mkdir()
    planted = [valid_bsn() for _ in range(5)]
    short = _bsn_below_100_million()
    texts = [f"Melder noemt verdachte {text} bij de woning." for text in _renderings(planted[0])]
    texts += [f"BSN {planted[1]} en {short[1:]} genoemd, zie ook {planted[2]}."]
    good = [
        {"bvh_nummer": f"PL-H{n}", "incident_code": "D200", "bsn_verdachte": planted[3],
         "omschrijving": text, "ernst": "5"}
        for n, text in enumerate(texts)
    ]  # fmt: skip
    expected = gemeente_file(inputs / "gemeente.jsonl") | politie_file(
        inputs / "politie.csv", *good
    )
    out = tmp_path / "out"

    result, children = _run_demo(tmp_path, "--input", str(inputs), "--out", str(out))

    assert result.returncode == 0, result.stderr[-3000:]
    _assert_nothing_left(tmp_path, children)
    rejects = {row["ref"]: row for row in _lines(out / "rejects.jsonl")}
    assert set(rejects) == set(expected)
    for ref, reason in expected.items():
        row = rejects[ref]
        assert f"({row['code']}): {row['reason']}".startswith(reason), (ref, row)
    delivered = {name: _lines(out / f"{name}.jsonl") for name in SUBSCRIBERS}
    police = [row for row in delivered["politie"] if row["signal_type"] == "drug_signal"]
    assert len(police) == len(good)
    assert all("pn1." in row["record"]["payload"]["description"] for row in police)
    text = "".join((out / f"{name}.jsonl").read_text("utf-8") for name in SUBSCRIBERS)
    found = {match.bsn for match in find_bsns(text)}
    assert found & {*planted, short} == set()
    audit = _lines(out / "audit.jsonl")
    _assert_no_value_links_domains(audit, delivered, min_pairs=5)
    assert assert_matrix_predicts(delivered) > 100


def test_demo_with_an_empty_input_directory_fails_with_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "signalhub", "demo", "--input", str(empty)],
        env={**os.environ, "SIGNALHUB_STATE_DIR": str(tmp_path / "state")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Error: no agency files in" in result.stderr
    assert "Traceback" not in result.stderr
