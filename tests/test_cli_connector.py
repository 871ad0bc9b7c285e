"""``signalhub connector ...`` through click's test runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector_support import SAMPLES, manifest
from signalhub.connector.cli import connector_group

ENV = {"SIGNALHUB_BOOTSTRAP_SERVERS": ""}


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(connector_group, list(args), env=ENV, catch_exceptions=False)


def test_list_shows_every_agency_with_its_signal_types() -> None:
    result = _invoke("list")
    assert result.exit_code == 0
    for name in ("politie", "gemeente", "woningcorporatie", "schuldhulpverlening"):
        assert name in result.output
    assert "sources: sql, jsonl, http" in result.output


def test_list_shows_the_youth_care_and_education_sources() -> None:
    lines = _invoke("list").output.splitlines()
    for name, signals in (
        ("jeugdzorg", "youth_protection_concern"),
        ("onderwijs", "school_absence"),
    ):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name} "))
        assert lines[at + 2].split() == ["signals:", signals], name


def test_a_dry_run_reports_rejects_on_stderr_and_writes_no_file(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    state = tmp_path / "state"
    env = ENV | {"SIGNALHUB_STATE_DIR": str(state)}
    result = CliRunner().invoke(
        connector_group, ["run", "politie", "--dry-run", "--rejects", str(rejects)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "politie: read 50, mapped (dry run) 45, rejected 5\n" in result.stdout
    lines = result.stderr.splitlines()
    refs = {line.split()[1] for line in lines}
    assert refs == set(manifest()["politie.csv"])
    assert "rejected politie.csv:19 (invalid): unknown incident_code 'X999'" in result.stderr
    assert not rejects.exists()
    assert not state.exists()


def test_a_dry_run_of_a_sql_source_creates_no_state_file(tmp_path: Path) -> None:
    url = f"sqlite:///{SAMPLES / 'schuldhulpverlening.sqlite'}"
    state = tmp_path / "state.sqlite"
    result = _invoke(
        "run", "schuldhulpverlening", "--dry-run", "--source", url, "--state", str(state)
    )
    assert "read 30, mapped (dry run) 27, rejected 3" in result.stdout
    assert not state.exists()


def test_without_a_hub_the_run_stops_with_what_to_do(tmp_path: Path) -> None:
    env = ENV | {"SIGNALHUB_STATE_DIR": str(tmp_path / "state")}
    result = CliRunner().invoke(
        connector_group, ["run", "politie", "--rejects", str(tmp_path / "r.jsonl")], env=env
    )
    assert result.exit_code == 1
    assert "Error: no running hub found" in result.output
    assert "start one with `signalhub up`" in result.output
    assert not (tmp_path / "r.jsonl").exists()  # stopped before reading a record


def test_an_unknown_connector_lists_the_known_ones() -> None:
    result = CliRunner().invoke(connector_group, ["run", "nobody", "--dry-run"], env=ENV)
    assert result.exit_code == 1
    assert (
        "no connector named 'nobody' — choose one of: bewoners, gemeente, jeugdzorg, onderwijs, "
        "politie" in result.output
    )


@pytest.mark.integration
def test_run_publishes_to_kafka_and_a_sql_rerun_reads_nothing(broker: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{SAMPLES / 'schuldhulpverlening.sqlite'}"
    broker.create_topics(["signals.debt_signal", "signals.casework_referral"])
    args = [
        "run",
        "schuldhulpverlening",
        "--source",
        url,
        "--bootstrap-servers",
        broker.bootstrap_servers,
        "--state",
        str(tmp_path / "state.sqlite"),
        "--rejects",
        str(tmp_path / "r.jsonl"),
    ]
    first = _invoke(*args)
    assert "read 30, published 27, rejected 3" in first.output
    second = _invoke(*args)
    assert "read 0, published 0, rejected 0" in second.output
