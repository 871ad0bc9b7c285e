"""The sharing policy through the real embedded OPA engine: shipped agreements, memo, failures."""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalhub.errors import PolicyError
from signalhub.policy.bundle import policy_version
from signalhub.policy.decision import Decision, build_input, parse_decisions
from signalhub.policy.engine import EmbeddedPolicyEngine, check_policies
from signalhub.policy.memo import MemoisedPolicy

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
TODAY = date(2026, 6, 1)
BSN_FIELDS = {"subject_bsn", "occupant_bsn"}

SUBSCRIPTIONS: list[dict[str, Any]] = tomllib.loads(
    (ROOT / "config" / "subscriptions.toml").read_text("utf-8")
)["subscription"]

# A realistic signal per type and which subscriptions the shipped agreements let it reach.
REALISTIC: dict[str, tuple[dict[str, Any], set[str]]] = {
    "nuisance_report": (
        {"category": "noise", "severity": 3, "reporter_type": "resident"},
        {"woningcorporatie-overlast", "gemeente-openbare-orde", "politie-handhaving"},
    ),
    "drug_signal": (
        {"activity": "production_site", "severity": 4, "age_band": "23-64", "minor": False},
        {"woningcorporatie-overlast", "gemeente-damocles", "politie-drugs", "om-strafrecht"},
    ),
    "intimidation_report": (
        {"victim_role": "official", "severity": 4, "organised_crime_indication": True},
        {"gemeente-ondermijning", "politie-handhaving", "om-strafrecht"},
    ),
    "debt_signal": (
        {"debt_kind": "rent", "months_in_arrears": 2, "age_band": "23-64", "minor": False},
        {"schuldhulpverlening-vroegsignalering"},
    ),
    "housing_closure": (
        {"measure": "closure_art13b_opiumwet"},
        {"woningcorporatie-sluitingen", "politie-handhaving", "zvh-casework"},
    ),
    "radicalisation_concern": (
        {"concern_level": "medium", "age_band": "12-17", "minor": True},
        {"gemeente-openbare-orde", "jeugdzorg-jeugdbescherming", "zvh-casework"},
    ),
    "casework_referral": (
        {"referral_reason": "after_detention", "urgency": "normal", "age_band": "23-64"}
        | {"minor": False},
        {"gemeente-casework", "om-casework", "reclassering-casework", "zvh-casework"},
    ),
    "casework_alert": (
        {"subject_kind": "person", "rule": "multi_agency_90_days"},
        {"zvh-casework"},
    ),
    "youth_protection_concern": (
        {"concern_kind": "criminal_exploitation", "severity": 4, "urgency": "urgent"}
        | {"age_band": "12-17", "minor": True},
        {"zvh-jeugd", "gemeente-jeugdhulp", "politie-jeugduitbuiting"},
    ),
    "school_absence": (
        {"absence_kind": "unauthorised_absence", "hours_absent": 24, "weeks_absent": 5}
        | {"age_band": "12-17", "minor": True},
        {"gemeente-leerplicht", "zvh-leerplicht", "jeugdzorg-leerplicht"},
    ),
}
# A resident's report of a dealing spot: the municipality and the police (not nuisance, below).
REALISTIC["neighbourhood_report"] = (
    {"category": "drug_dealing_spot", "frequency": "daily"},
    {"gemeente-meldpunt", "politie-meldpunt"},
)

PolicyDirFactory = Callable[..., Path]


def subscriptions_for(signal_type: str) -> list[dict[str, Any]]:
    return [s for s in SUBSCRIPTIONS if signal_type in s["signal_types"]]


@pytest.fixture(scope="module")
def engine() -> EmbeddedPolicyEngine:
    return EmbeddedPolicyEngine.from_dir(POLICIES)


@pytest.fixture
def policy_dir_factory(tmp_path: Path) -> PolicyDirFactory:
    def make(rego: str, data: str = '{"k": {}}') -> Path:
        root = tmp_path / "policies"
        (root / "signalhub" / "sharing").mkdir(parents=True)
        (root / "data").mkdir()
        (root / "signalhub" / "sharing" / "sharing.rego").write_text(rego)
        (root / "data" / "agreements.json").write_text(data)
        return root

    return make


def test_subscription_ids_are_unique_and_channels_known() -> None:
    ids = [s["id"] for s in SUBSCRIPTIONS]
    assert len(ids) == len(set(ids))
    assert {s["channel"] for s in SUBSCRIPTIONS} == {"kafka", "pull", "webhook"}
    assert {s["channel"] for s in SUBSCRIPTIONS if s["subscriber"] == "reclassering"} == {"webhook"}
    assert {s["channel"] for s in SUBSCRIPTIONS if s["subscriber"] == "schuldhulpverlening"} == {
        "pull"
    }


def test_every_signal_type_has_subscriptions() -> None:
    assert set(REALISTIC) == {t for s in SUBSCRIPTIONS for t in s["signal_types"]}


@pytest.mark.parametrize("signal_type", sorted(REALISTIC))
def test_every_subscription_decided_for_realistic_signal(
    engine: EmbeddedPolicyEngine, signal_type: str
) -> None:
    attributes, expected = REALISTIC[signal_type]
    subs = subscriptions_for(signal_type)
    decisions = engine.decide(build_input(signal_type, "gemeente", attributes, subs, TODAY))
    assert set(decisions) == {s["id"] for s in subs}
    assert {sid for sid, d in decisions.items() if d.allow} == expected
    for sid, decision in decisions.items():
        assert decision.policy_version == engine.version
        assert decision.reasons, sid
        assert not BSN_FIELDS & set(decision.fields)
        if not decision.allow:
            assert decision.fields == ()
            assert decision.pseudonymise == ()


def test_denied_subscription_without_agreement_names_type_subscriber_purpose(
    engine: EmbeddedPolicyEngine,
) -> None:
    subs = subscriptions_for("debt_signal")
    attributes = REALISTIC["debt_signal"][0]
    decisions = engine.decide(build_input("debt_signal", "gemeente", attributes, subs, TODAY))
    assert decisions["woningcorporatie-huurachterstand"].reasons == (
        "no agreement for debt_signal to woningcorporatie for purpose prevent_eviction",
    )


def test_allowed_decision_carries_agreement_fields_domain_and_basis(
    engine: EmbeddedPolicyEngine,
) -> None:
    subs = [s for s in SUBSCRIPTIONS if s["id"] == "reclassering-casework"]
    attributes = REALISTIC["casework_referral"][0]
    decision = engine.decide(build_input("casework_referral", "zvh", attributes, subs, TODAY))[
        "reclassering-casework"
    ]
    assert decision == Decision(
        allow=True,
        fields=("neighbourhood_code", "referral_reason", "urgency"),
        pseudonymise=("subject_bsn", "subject_name"),
        reasons=(
            "permitted by agreement casework_referral/reclassering/casework under "
            "Wgs art. 3 / convenant ZVH Maastricht art. 5",
        ),
        policy_version=engine.version,
        domain="zvh-casework",
        legal_basis="Wgs art. 3 / convenant ZVH Maastricht art. 5",
    )


ATTRIBUTES = st.fixed_dictionaries(
    {},
    optional={
        "severity": st.integers(0, 6),
        "minor": st.booleans(),
        "consent": st.booleans(),
        "months_in_arrears": st.integers(0, 12),
        "activity": st.sampled_from(["dealing", "storage", "recruitment_of_minors"]),
        "measure": st.sampled_from(["eviction", "closure_art13b_opiumwet"]),
        "concern_level": st.sampled_from(["low", "medium", "high"]),
        "referral_reason": st.sampled_from(["multi_problem", "safety_risk", "after_detention"]),
        "victim_role": st.sampled_from(["resident", "official"]),
        "organised_crime_indication": st.booleans(),
    },
)


@settings(max_examples=150, deadline=None)
@given(signal_type=st.sampled_from(sorted(REALISTIC)), attributes=ATTRIBUTES)
def test_shipped_policy_invariants_hold_for_any_attributes(
    engine: EmbeddedPolicyEngine, signal_type: str, attributes: dict[str, Any]
) -> None:
    subs = subscriptions_for(signal_type)
    decisions = engine.decide(build_input(signal_type, "politie", attributes, subs, TODAY))
    assert set(decisions) == {s["id"] for s in subs}
    by_id = {s["id"]: s for s in subs}
    for sid, decision in decisions.items():
        subscriber = by_id[sid]["subscriber"]
        assert not BSN_FIELDS & set(decision.fields)
        if decision.allow and subscriber == "woningcorporatie":
            assert attributes.get("minor") is not True
        if decision.allow and subscriber == "jeugdzorg":
            assert attributes.get("minor") is True


def test_claimed_legal_basis_must_match(engine: EmbeddedPolicyEngine) -> None:
    sub = dict(next(s for s in SUBSCRIPTIONS if s["id"] == "gemeente-damocles"))
    sub["legal_basis"] = "Gemeentewet art. 172"
    attributes = REALISTIC["drug_signal"][0]
    decision = engine.decide(build_input("drug_signal", "politie", attributes, [sub], TODAY))[
        sub["id"]
    ]
    assert not decision.allow
    assert "does not match" in decision.reasons[0]


def test_expired_agreement_denies(engine: EmbeddedPolicyEngine) -> None:
    subs = subscriptions_for("housing_closure")
    attributes = REALISTIC["housing_closure"][0]
    decisions = engine.decide(
        build_input("housing_closure", "gemeente", attributes, subs, date(2028, 1, 1))
    )
    assert not any(d.allow for d in decisions.values())


def test_build_input_projects_and_sorts_subscriptions() -> None:
    subs: list[dict[str, Any]] = [
        {"id": "b", "subscriber": "om", "purpose": "p", "legal_basis": "l", "channel": "kafka"},
        {"id": "a", "subscriber": "zvh", "purpose": "q", "legal_basis": "m", "signal_types": []},
    ]
    policy_input = build_input("drug_signal", "politie", {"severity": 2}, subs, TODAY)
    assert policy_input == {
        "signal": {"type": "drug_signal", "source": "politie", "attributes": {"severity": 2}},
        "subscriptions": [
            {"id": "a", "subscriber": "zvh", "purpose": "q", "legal_basis": "m"},
            {"id": "b", "subscriber": "om", "purpose": "p", "legal_basis": "l"},
        ],
        "now": "2026-06-01",
    }


def _corpus(seed: int, size: int) -> list[Any]:
    rng = random.Random(seed)
    corpus = []
    for _ in range(size):
        signal_type = rng.choice(sorted(REALISTIC))
        attributes = dict(REALISTIC[signal_type][0])
        attributes["severity"] = rng.randint(1, 5)
        attributes["minor"] = rng.random() < 0.2
        if rng.random() < 0.3:
            attributes["consent"] = rng.random() < 0.5
        day = date(2026, 1, 1 + rng.randint(0, 2))
        subs = subscriptions_for(signal_type)
        corpus.append(build_input(signal_type, "gemeente", attributes, subs, day))
    return corpus


def test_memoised_and_unmemoised_decide_identically(engine: EmbeddedPolicyEngine) -> None:
    memo = MemoisedPolicy(engine, maxsize=10_000)
    corpus = _corpus(seed=7, size=400)
    for policy_input in corpus:
        assert memo.decide(policy_input) == engine.decide(policy_input)
    distinct = {json.dumps(i, sort_keys=True) for i in corpus}
    assert memo.misses == len(memo) == len(distinct)
    assert memo.hits == len(corpus) - memo.misses
    assert memo.hits > 0
    assert memo.version == engine.version


def test_memo_is_bounded_lru(engine: EmbeddedPolicyEngine) -> None:
    memo = MemoisedPolicy(engine, maxsize=2)
    a, b, c = (
        build_input("housing_closure", "gemeente", {"measure": m}, [], TODAY)
        for m in ("eviction", "closure_art13b_opiumwet", "closure_art174a_gemeentewet")
    )
    memo.decide(a)
    memo.decide(b)
    memo.decide(a)  # a is now most recent
    memo.decide(c)  # evicts b
    assert len(memo) == 2
    assert (memo.hits, memo.misses) == (1, 3)
    memo.decide(a)
    memo.decide(b)
    assert (memo.hits, memo.misses) == (2, 4)


def test_a_warmed_memo_answers_those_inputs_without_evaluating(
    engine: EmbeddedPolicyEngine,
) -> None:
    memo = MemoisedPolicy(engine, maxsize=10_000)
    corpus = _corpus(seed=3, size=100)
    broken = build_input("drug_signal", "politie", {}, subscriptions_for("drug_signal"), TODAY)
    del broken["signal"]  # the policy cannot decide this one: left out, not cached
    distinct = {json.dumps(i, sort_keys=True) for i in corpus}
    assert memo.warm([*corpus, broken]) == len(distinct)
    assert memo.warm(corpus) == 0  # already held
    for policy_input in corpus:
        assert memo.decide(policy_input) == engine.decide(policy_input)
    assert (memo.hits, memo.misses, len(memo)) == (len(corpus), 0, len(distinct))


def test_a_warm_up_stops_when_told(engine: EmbeddedPolicyEngine) -> None:
    memo = MemoisedPolicy(engine, maxsize=10_000)
    calls = iter(range(1_000))
    assert memo.warm(_corpus(seed=4, size=50), keep_going=lambda: next(calls) < 5) == 5
    assert len(memo) == 5


def test_memo_returns_copies(engine: EmbeddedPolicyEngine) -> None:
    memo = MemoisedPolicy(engine)
    policy_input = _corpus(seed=1, size=1)[0]
    first = memo.decide(policy_input)
    first.clear()
    assert memo.decide(policy_input) != {}


def test_memo_keys_by_canonical_json_and_refuses_what_is_not_json(
    engine: EmbeddedPolicyEngine,
) -> None:
    memo = MemoisedPolicy(engine)
    policy_input = _corpus(seed=2, size=1)[0]
    memo.decide(policy_input)
    memo.decide(dict(reversed(list(policy_input.items()))))  # same input, other key order
    assert (memo.hits, memo.misses) == (1, 1)
    with pytest.raises(PolicyError, match="not JSON-serialisable"):
        memo.decide({**policy_input, "now": object()})


def test_duplicate_subscription_ids_fail_closed(engine: EmbeddedPolicyEngine) -> None:
    sub = next(s for s in SUBSCRIPTIONS if s["id"] == "gemeente-damocles")
    twin = dict(sub, purpose="public_order")
    policy_input = build_input("drug_signal", "politie", {"severity": 3}, [sub, twin], TODAY)
    memo = MemoisedPolicy(engine)
    for _ in range(2):
        with pytest.raises(PolicyError, match="policy evaluation failed"):
            memo.decide(policy_input)
    assert (memo.hits, memo.misses, len(memo)) == (0, 0, 0)


def test_input_without_signal_fails_closed(engine: EmbeddedPolicyEngine) -> None:
    subs = subscriptions_for("drug_signal")
    policy_input = build_input("drug_signal", "politie", {}, subs, TODAY)
    del policy_input["signal"]
    with pytest.raises(PolicyError, match="no decision for subscription"):
        engine.decide(policy_input)


def test_policy_without_decisions_document_refused_at_load(
    policy_dir_factory: PolicyDirFactory,
) -> None:
    root = policy_dir_factory("package signalhub.sharing\n\nimport rego.v1\n\nother := 1\n")
    with pytest.raises(PolicyError, match="undefined"):
        EmbeddedPolicyEngine.from_dir(root)


def test_broken_policy_refused_with_file_and_line(policy_dir_factory: PolicyDirFactory) -> None:
    root = policy_dir_factory("package signalhub.sharing\n\nimport rego.v1\n\ndecisions := {\n")
    with pytest.raises(PolicyError, match=r"sharing\.rego:\d+"):
        EmbeddedPolicyEngine.from_dir(root)
    assert any("sharing.rego:" in p for p in check_policies(root))


def test_type_error_reported_by_check(policy_dir_factory: PolicyDirFactory) -> None:
    root = policy_dir_factory(
        "package signalhub.sharing\n\nimport rego.v1\n\ndecisions := count(1, 2)\n"
    )
    assert check_policies(root) == [
        "policies/signalhub/sharing/sharing.rego:5: rego_type_error: count: arity mismatch"
    ]
    with pytest.raises(PolicyError, match="arity mismatch"):
        EmbeddedPolicyEngine.from_dir(root)


def test_invalid_data_json_reported_with_line(policy_dir_factory: PolicyDirFactory) -> None:
    root = policy_dir_factory("package signalhub.sharing\n\ndecisions := {}\n", '{\n  "a": ,\n}')
    assert check_policies(root) == [
        "policies/data/agreements.json:2: invalid JSON: Expecting value — fix the data file"
    ]


def test_missing_policy_dir_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        EmbeddedPolicyEngine.from_dir(tmp_path / "nope")


def test_shipped_policy_checks_clean() -> None:
    assert check_policies(POLICIES) == []


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("yes", "not an object"),
        ({"allow": "true"}, "allow is not a boolean"),
        (
            {"allow": True, "fields": ["a"], "pseudonymise": [], "reasons": [], "domain": "x"},
            "domain/legal_basis",
        ),
        (
            {"allow": True, "fields": "a", "pseudonymise": [], "reasons": []}
            | {"domain": "x", "legal_basis": ""},
            "fields is not a list",
        ),
        (
            {"allow": True, "fields": ["a"], "pseudonymise": ["a"], "reasons": []}
            | {"domain": "x", "legal_basis": ""},
            "both clear and pseudonymised",
        ),
        (
            {"allow": True, "fields": [], "pseudonymise": [], "reasons": []}
            | {"domain": "../x", "legal_basis": ""},
            "invalid pseudonym domain",
        ),
    ],
    ids=["not-object", "allow-string", "no-basis", "fields-string", "overlap", "bad-domain"],
)
def test_malformed_entries_fail_closed(entry: Any, problem: str) -> None:
    with pytest.raises(PolicyError, match=problem):
        parse_decisions({"s": entry}, ["s"], "v")


def test_deny_entry_never_carries_fields() -> None:
    entry = {"allow": False, "fields": ["address"], "pseudonymise": ["subject_bsn"]} | {
        "reasons": ["no"],
        "domain": "om",
        "legal_basis": "",
    }
    decision = parse_decisions({"s": entry}, ["s"], "v")["s"]
    assert (decision.fields, decision.pseudonymise) == ((), ())


def test_malformed_policy_answer_fails_closed_through_engine(
    policy_dir_factory: PolicyDirFactory,
) -> None:
    root = policy_dir_factory(
        "package signalhub.sharing\n\nimport rego.v1\n\n"
        'decisions := {sub.id: {"allow": "yes"} | some sub in input.subscriptions}\n'
    )
    engine = EmbeddedPolicyEngine.from_dir(root)
    policy_input = build_input(
        "drug_signal", "politie", {}, subscriptions_for("drug_signal"), TODAY
    )
    with pytest.raises(PolicyError, match="allow is not a boolean"):
        engine.decide(policy_input)


def test_policy_version_tracks_rules_and_data_not_tests(
    tmp_path: Path, policy_dir_factory: PolicyDirFactory
) -> None:
    root = policy_dir_factory("package signalhub.sharing\n\ndecisions := {}\n")
    first = EmbeddedPolicyEngine.from_dir(root).version
    assert first.startswith("sha256:")
    assert len(first) == len("sha256:") + 16
    (root / "signalhub" / "sharing" / "sharing_test.rego").write_text("package x_test\n")
    assert EmbeddedPolicyEngine.from_dir(root).version == first
    (root / "data" / "agreements.json").write_text('{"k": {"changed": true}}')
    assert EmbeddedPolicyEngine.from_dir(root).version != first
    assert policy_version({}) != first


def test_input_without_attributes_fails_closed(engine: EmbeddedPolicyEngine) -> None:
    subs = subscriptions_for("drug_signal")
    policy_input = build_input("drug_signal", "politie", {}, subs, TODAY)
    del policy_input["signal"]["attributes"]
    with pytest.raises(PolicyError, match="no decision for subscription"):
        engine.decide(policy_input)


def test_a_residents_nuisance_report_reaches_the_municipality_only(
    engine: EmbeddedPolicyEngine,
) -> None:
    subs = subscriptions_for("neighbourhood_report")
    attributes = {"category": "nuisance", "frequency": "weekly"}
    decisions = engine.decide(
        build_input("neighbourhood_report", "bewoners", attributes, subs, TODAY)
    )
    assert {sid for sid, d in decisions.items() if d.allow} == {"gemeente-meldpunt"}
    assert all("description" not in d.fields for d in decisions.values())
