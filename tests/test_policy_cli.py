"""``signalhub policy``: check, test, matrix, conformance and history through the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from policy_support import add_failing_test, break_syntax, copy_policies
from signalhub.cli import cli


def run(tmp_path: Path, *args: str) -> Result:
    env = {"SIGNALHUB_STATE_DIR": str(tmp_path / "state"), "SIGNALHUB_BOOTSTRAP_SERVERS": ""}
    return CliRunner().invoke(cli, ["policy", *args], env=env)


def test_check_reports_file_and_line(tmp_path: Path) -> None:
    broken = break_syntax(copy_policies(tmp_path / "policies"))
    result = run(tmp_path, "check", "--dir", str(broken))
    assert result.exit_code == 1
    assert "policies/signalhub/sharing/sharing.rego:" in result.output
    assert "rego_parse_error" in result.output
    assert run(tmp_path, "check").exit_code == 0


def test_test_command_reports_passes_and_rule_coverage(tmp_path: Path) -> None:
    result = run(tmp_path, "test")
    assert result.exit_code == 0, result.output
    assert "PASS: " in result.output
    assert "coverage of the policy rules: " in result.output
    percent = float(result.output.split("coverage of the policy rules: ")[1].split("%")[0])
    assert percent > 90


def test_test_command_tests_the_given_directory_and_nothing_else(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path / "elsewhere" / "policies")
    (policies / "signalhub" / "bundling").rename(tmp_path / "bundling-moved-away")
    result = run(tmp_path, "test", "-v", "--dir", str(policies))
    assert result.exit_code == 0, result.output
    assert "data.signalhub.sharing_test." in result.output
    assert "bundling_test" not in result.output  # only what is in --dir
    assert "pytest" not in result.output
    assert run(tmp_path, "test", "--rego-only", "--dir", str(policies)).exit_code == 0


def test_test_command_fails_on_a_failing_rego_test(tmp_path: Path) -> None:
    failing = add_failing_test(copy_policies(tmp_path / "policies"))
    result = run(tmp_path, "test", "--dir", str(failing))
    assert result.exit_code == 1
    assert "test_deny_always_fails: FAIL (undefined: policies/signalhub/sharing/" in result.output
    assert "FAIL: " in result.output


def test_test_command_fails_on_an_agreement_without_tests(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path / "policies")
    path = policies / "data" / "agreements.json"
    agreements = json.loads(path.read_text("utf-8"))
    agreements["drug_signal/om/new_purpose"] = agreements["drug_signal/om/prosecution"]
    path.write_text(json.dumps(agreements), "utf-8")
    result = run(tmp_path, "test", "--dir", str(policies))
    assert result.exit_code == 1
    assert "MISSING: agreement drug_signal/om/new_purpose has no test_allow_" in result.output


@pytest.mark.parametrize("fmt", ["text", "csv", "html"])
def test_matrix_formats(tmp_path: Path, fmt: str) -> None:
    result = run(tmp_path, "matrix", "--format", fmt, "--dir", "policies", "--today", "2026-06-01")
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.output)))
        cell = {(r["subscription"], r["signal_type"], r["field"]): r["treatment"] for r in rows}
        assert cell[("gemeente-openbare-orde", "nuisance_report", "subject_bsn")] == (
            "pseudonymised"
        )
        assert cell[("gemeente-openbare-orde", "nuisance_report", "address")] == "withheld"
        assert cell[("politie-handhaving", "nuisance_report", "subject_name")] == "clear"
        # No agreement: every field withheld, with the policy's reason.
        denied = [r for r in rows if r["subscription"] == "woningcorporatie-huurachterstand"]
        assert denied
        assert {r["treatment"] for r in denied} == {"withheld"}
        assert "no agreement" in denied[0]["when_denied"]
        # No subscriber ever sees a BSN in clear.
        assert not [r for r in rows if r["field"].endswith("_bsn") and r["treatment"] == "clear"]
    elif fmt == "html":
        assert result.output.startswith("<!doctype html>")
        assert "<td class='pseudonymised'>" in result.output
    else:
        assert "gemeente-openbare-orde, always" in result.output


def test_conformance_against_a_local_server(tmp_path: Path) -> None:
    result = run(tmp_path, "conformance", "--today", "2026-06-01")
    assert result.exit_code == 0, result.output
    assert "0 difference(s)" in result.output


def test_history_empty(tmp_path: Path) -> None:
    result = run(tmp_path, "history")
    assert result.exit_code == 0
    assert "no policy version published yet" in result.output
