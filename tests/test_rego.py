"""The Rego tests beside the policies, run through the embedded engine (`signalhub policy test`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signalhub.errors import PolicyError
from signalhub.policy.engine import run_rego_tests

POLICIES = Path(__file__).resolve().parents[1] / "policies"
RESULTS = run_rego_tests(POLICIES)


@pytest.mark.parametrize(("name", "passed", "message"), RESULTS, ids=[r[0] for r in RESULTS])
def test_rego_rule_passes(name: str, passed: bool, message: str) -> None:
    assert passed, f"{name}: {message}"


def test_every_agreement_has_allow_and_deny_tests() -> None:
    agreements = json.loads((POLICIES / "data" / "agreements.json").read_text("utf-8"))
    names = {name.rsplit(".", 1)[1] for name, _, _ in RESULTS}
    for key in agreements:
        stem = key.replace("/", "_")
        assert f"test_allow_{stem}" in names, key
        assert any(n.startswith(f"test_deny_{stem}_") for n in names), key


def test_failing_and_erroring_rules_are_reported(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "demo.rego").write_text(
        "package demo\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.ok\n"
    )
    (tmp_path / "demo" / "demo_test.rego").write_text(
        "package demo_test\n\nimport rego.v1\n\nimport data.demo\n\n"
        'test_allow_ok if demo.allow with input as {"ok": true}\n\n'
        'test_allow_wrong if demo.allow with input as {"ok": false}\n\n'
        "test_deny_false := false\n\n"
        "test_deny_conflict := x if {\n\tsome x in [1, 2]\n}\n"
    )
    results = {name: (passed, message) for name, passed, message in run_rego_tests(tmp_path)}
    assert results["demo_test.test_allow_ok"] == (True, "")
    assert results["demo_test.test_allow_wrong"] == (False, "undefined or false")
    assert results["demo_test.test_deny_false"] == (False, "undefined or false")
    assert results["demo_test.test_deny_conflict"][0] is False
    assert "conflict" in results["demo_test.test_deny_conflict"][1]


def test_unparseable_test_file_raises(tmp_path: Path) -> None:
    (tmp_path / "x_test.rego").write_text("package x_test\n\ntest_a if {\n")
    with pytest.raises(PolicyError, match=r"x_test\.rego:\d+"):
        run_rego_tests(tmp_path)
