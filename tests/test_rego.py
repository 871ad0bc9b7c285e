"""The Rego tests beside the policies, run through the embedded engine (`signalhub policy test`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_support import copy_policies
from signalhub.errors import PolicyError
from signalhub.policy.bundle import bundle_from_dir
from signalhub.policy.rego_tests import RegoCoverage, run_rego_tests, untested_agreements

POLICIES = Path(__file__).resolve().parents[1] / "policies"
RESULTS = run_rego_tests(POLICIES)


@pytest.mark.parametrize(("name", "passed", "message"), RESULTS, ids=[r[0] for r in RESULTS])
def test_rego_rule_passes(name: str, passed: bool, message: str) -> None:
    assert passed, f"{name}: {message}"


def test_every_agreement_has_allow_and_deny_tests() -> None:
    assert untested_agreements(POLICIES, RESULTS) == []


DEMO_POLICY = """package demo

import rego.v1

default allow := false

allow if input.ok

decision := {"allow": input.ok == true, "fields": ["a", "b"], "reasons": ["r1"]}
"""

DEMO_TESTS = """package demo_test

import rego.v1

import data.demo

test_allow_ok if demo.allow with input as {"ok": true}

test_allow_wrong if demo.allow with input as {"ok": false}

test_deny_false := false

test_deny_conflict := x if {
\tsome x in [1, 2]
}

test_fields if {
\td := demo.decision with input as {"ok": true}
\td.allow == true
\td.fields == ["a", "c"]
}

_reasons_are_r2(d) if {
\td.reasons == ["r2"]
}

test_through_a_helper if {
\td := demo.decision with input as {"ok": true}
\t_reasons_are_r2(d)
}

test_negation if {
\td := demo.decision with input as {"ok": true}
\tnot d.allow
}
"""


@pytest.fixture
def demo_results(tmp_path: Path) -> dict[str, tuple[bool, str]]:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "demo.rego").write_text(DEMO_POLICY)
    (tmp_path / "demo" / "demo_test.rego").write_text(DEMO_TESTS)
    return {name: (passed, message) for name, passed, message in run_rego_tests(tmp_path)}


def test_passing_and_failing_rules_are_told_apart(
    demo_results: dict[str, tuple[bool, str]],
) -> None:
    assert demo_results["demo_test.test_allow_ok"] == (True, "")
    assert [name for name, (passed, _) in demo_results.items() if passed] == [
        "demo_test.test_allow_ok"
    ]
    assert demo_results["demo_test.test_deny_false"] == (False, "is false, not true")


def test_a_conflict_fails_its_own_rule_only(demo_results: dict[str, tuple[bool, str]]) -> None:
    passed, message = demo_results["demo_test.test_deny_conflict"]
    assert not passed
    assert "demo_test.rego:13: eval_conflict_error" in message
    assert demo_results["demo_test.test_allow_ok"][0]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        pytest.param(
            "test_fields",
            'undefined: {root}/demo/demo_test.rego:20: d.fields == ["a", "c"]'
            ' — d.fields is ["a", "b"]',
            id="comparison-shows-the-actual-value",
        ),
        pytest.param(
            "test_through_a_helper",
            "undefined: {root}/demo/demo_test.rego:29: _reasons_are_r2(d) — d = "
            '{"allow": true, "fields": ["a", "b"], "reasons": ["r1"]}'
            ' → {root}/demo/demo_test.rego:24: d.reasons == ["r2"] — d.reasons is ["r1"]',
            id="into-the-helper-that-failed",
        ),
        pytest.param(
            "test_negation",
            "undefined: {root}/demo/demo_test.rego:34: not d.allow — d.allow is true",
            id="negation",
        ),
        pytest.param(
            "test_allow_wrong",
            "undefined: {root}/demo/demo_test.rego:9: test_allow_wrong if demo.allow with input"
            ' as {"ok": false} → {root}/demo/demo.rego:7: allow if input.ok',
            id="rule-under-test-with-input",
        ),
    ],
)
def test_a_failing_rule_says_where_and_what_came_out(
    tmp_path: Path, demo_results: dict[str, tuple[bool, str]], rule: str, message: str
) -> None:
    assert demo_results[f"demo_test.{rule}"] == (False, message.replace("{root}", tmp_path.name))


def test_the_files_of_a_bundle_are_tested_like_a_directory() -> None:
    assert run_rego_tests(bundle_from_dir(POLICIES).files) == RESULTS


def test_every_rule_is_run_under_coverage() -> None:
    coverage = RegoCoverage()
    assert run_rego_tests(POLICIES, coverage) == RESULTS
    assert coverage.percent() > 90
    assert set(coverage.files()) == {
        "policies/signalhub/bundling/bundling.rego",
        "policies/signalhub/sharing/sharing.rego",
    }


def test_missing_agreement_tests_are_named(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path / "policies")
    assert untested_agreements(policies, RESULTS) == []
    agreements = json.loads((policies / "data" / "agreements.json").read_text("utf-8"))
    agreements["drug_signal/om/new_purpose"] = agreements["drug_signal/om/prosecution"]
    (policies / "data" / "agreements.json").write_text(json.dumps(agreements), "utf-8")
    assert untested_agreements(policies, RESULTS) == [
        "agreement drug_signal/om/new_purpose has no test_allow_drug_signal_om_new_purpose",
        "agreement drug_signal/om/new_purpose has no test_deny_drug_signal_om_new_purpose_* test",
    ]


def test_unparseable_test_file_raises(tmp_path: Path) -> None:
    (tmp_path / "x_test.rego").write_text("package x_test\n\ntest_a if {\n")
    with pytest.raises(PolicyError, match=r"x_test\.rego:\d+"):
        run_rego_tests(tmp_path)


def test_a_policy_that_does_not_compile_raises(tmp_path: Path) -> None:
    (tmp_path / "x_test.rego").write_text(
        "package x_test\n\nimport rego.v1\n\ntest_a if count(1, 2)\n"
    )
    with pytest.raises(PolicyError, match=r"x_test\.rego:5: rego_type_error"):
        run_rego_tests(tmp_path)
