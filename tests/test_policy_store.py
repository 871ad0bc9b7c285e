"""Policy versions: bundles, the history store, validation before publish, hot switching."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from policy_support import (
    AGREEMENT,
    POLICIES,
    add_clear_field,
    add_failing_test,
    break_syntax,
    copy_policies,
    undecided_policy,
)
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.config import load_settings
from signalhub.errors import PolicyError
from signalhub.policy.bundle import PolicyBundle, bundle_from_dir, policy_version
from signalhub.policy.decision import build_input
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.policy.lifecycle import publish_policy, restore_policy_in_force, validate_policy
from signalhub.policy.store import PolicyStore, read_current_bundle
from signalhub.policy.switch import BrokenPolicy, PolicyWatcher, SwitchablePolicy

TODAY = date(2026, 6, 1)
GEMEENTE = {
    "id": "gemeente-openbare-orde",
    "subscriber": "gemeente",
    "purpose": "public_order",
    "legal_basis": "Gemeentewet art. 172",
}
NUISANCE = build_input(
    "nuisance_report",
    "politie",
    {"category": "noise", "severity": 3, "reporter_type": "resident"},
    [GEMEENTE],
    TODAY,
)


def test_bundle_carries_all_files_and_the_engine_version() -> None:
    bundle = bundle_from_dir(POLICIES)
    assert bundle.version == policy_version(bundle.files)
    assert bundle.version == EmbeddedPolicyEngine.from_dir(POLICIES).version
    assert "signalhub/sharing/sharing_test.rego" in bundle.files
    assert "data/agreements.json" in bundle.files
    again = PolicyBundle.from_bytes(bundle.stamped("why", "who").to_bytes())
    assert (again.version, again.files, again.message, again.author) == (
        bundle.version,
        bundle.files,
        "why",
        "who",
    )


def test_the_version_is_the_hash_published_versions_always_had(tmp_path: Path) -> None:
    # Rules and data, sorted by path parts; tests left out. A published version keeps its value.
    files = {
        "data/a.json": "{}",
        "data-x/b.rego": "package b",
        "data/z_test.rego": "package z_test",
        "a.rego": "package a\r\n",
    }
    digest = hashlib.sha256()
    for name in ("a.rego", "data/a.json", "data-x/b.rego"):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    assert policy_version(files) == "sha256:" + digest.hexdigest()[:16]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(text.encode())
    assert bundle_from_dir(tmp_path) == PolicyBundle(policy_version(files), files)


def test_an_engine_built_from_a_bundle_stamps_the_bundle_version() -> None:
    bundle = bundle_from_dir(POLICIES)
    engine = EmbeddedPolicyEngine.from_bundle(PolicyBundle("sha256:as-stated", bundle.files))
    assert engine.version == "sha256:as-stated"  # taken from the bundle, not hashed again
    assert engine.decide(NUISANCE)["gemeente-openbare-orde"].policy_version == "sha256:as-stated"


def test_a_bundle_read_back_is_verified_against_its_version() -> None:
    bundle = bundle_from_dir(POLICIES).stamped("why", "who")
    assert PolicyBundle.from_bytes(bundle.to_bytes()).verified() == bundle


def test_altered_bundle_refused() -> None:
    bundle = bundle_from_dir(POLICIES)
    files = dict(bundle.files)
    files["data/agreements.json"] = files["data/agreements.json"].replace(
        "2027-12-31", "2099-12-31"
    )
    with pytest.raises(PolicyError, match="altered"):
        PolicyBundle(bundle.version, files).verified()


@pytest.mark.parametrize("name", ["../evil.rego", "/etc/evil.rego", ""])
def test_bundle_path_escape_refused(name: str) -> None:
    with pytest.raises(PolicyError, match="unsafe"):
        PolicyBundle("sha256:0", {name: "package x"}).verified()


def test_an_altered_record_on_the_topic_makes_the_enforcer_fail_closed(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    policy = SwitchablePolicy(EmbeddedPolicyEngine.from_dir(POLICIES))
    bundle = bundle_from_dir(add_clear_field(copy_policies(tmp_path / "p"), AGREEMENT, "address"))
    files = {**bundle.files, "data/agreements.json": bundle.files["data/agreements.json"] + " "}
    PolicyWatcher(settings, "unused:1", policy).apply(
        PolicyBundle(bundle.version, files).to_bytes()
    )
    assert policy.version == bundle.version
    with pytest.raises(PolicyError, match="altered"):
        policy.decide(NUISANCE)


def test_not_a_bundle_is_a_policy_error() -> None:
    with pytest.raises(PolicyError):
        PolicyBundle.from_bytes(b"{not json")


def test_store_keeps_history_and_finds_by_prefix(tmp_path: Path) -> None:
    store = PolicyStore.in_state_dir(tmp_path)
    first = bundle_from_dir(POLICIES).stamped("first", "alice")
    second_dir = add_clear_field(copy_policies(tmp_path / "p"), AGREEMENT, "address")
    second = bundle_from_dir(second_dir).stamped("second", "bob")
    store.record(first, "publish")
    store.record(second, "publish")
    store.record(first.stamped("back", "carol"), "rollback")
    history = store.history()
    assert [(e.version, e.action, e.author) for e in history] == [
        (first.version, "publish", "alice"),
        (second.version, "publish", "bob"),
        (first.version, "rollback", "carol"),
    ]
    assert store.find(second.version[7:15]).version == second.version
    assert store.find(first.version).bundle().files == first.files
    with pytest.raises(PolicyError, match="no published"):
        store.find("ffffffff")


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        pytest.param(break_syntax, "rego_parse_error", id="syntax-error"),
        pytest.param(add_failing_test, "test failed", id="failing-test"),
        pytest.param(undecided_policy, "cannot decide", id="undefined-decisions"),
    ],
)
def test_publish_refuses_broken_policy_and_records_nothing(
    tmp_path: Path, breakage: object, problem: str
) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    candidate = breakage(copy_policies(tmp_path / "policies"))  # type: ignore[operator]
    problems = validate_policy(settings, bundle_from_dir(candidate), TODAY)
    assert any(problem in p for p in problems)
    with pytest.raises(PolicyError, match="refused"):
        # Refused before any broker is contacted: the bootstrap is never used.
        publish_policy(settings, "127.0.0.1:1", candidate, message="m", author="a", today=TODAY)
    assert PolicyStore.in_state_dir(settings.state_dir).history() == []


def test_shipped_policy_is_publishable() -> None:
    assert validate_policy(load_settings(), bundle_from_dir(POLICIES), TODAY) == []


def test_switch_replaces_engine_and_memo_at_once(tmp_path: Path) -> None:
    old = EmbeddedPolicyEngine.from_dir(POLICIES)
    new = EmbeddedPolicyEngine.from_dir(
        add_clear_field(copy_policies(tmp_path / "p"), AGREEMENT, "address")
    )
    policy = SwitchablePolicy(old)
    before = policy.decide(NUISANCE)["gemeente-openbare-orde"]
    policy.decide(NUISANCE)
    assert policy.active.hits == 1
    policy.switch(new)
    after = policy.decide(NUISANCE)["gemeente-openbare-orde"]
    assert (before.policy_version, after.policy_version) == (old.version, new.version)
    assert policy.version == new.version
    assert "address" not in before.fields
    assert "address" in after.fields
    assert (policy.active.hits, policy.active.misses) == (0, 1)


def test_every_memo_put_in_force_is_warmed_in_the_background(tmp_path: Path) -> None:
    old = EmbeddedPolicyEngine.from_dir(POLICIES)
    new = EmbeddedPolicyEngine.from_dir(
        add_clear_field(copy_policies(tmp_path / "p"), AGREEMENT, "address")
    )
    policy = SwitchablePolicy(old, warm_with=lambda: [NUISANCE])
    assert policy.wait_warm(30)
    assert len(policy.active) == 1
    policy.switch(new)
    assert policy.wait_warm(30)
    decision = policy.decide(NUISANCE)["gemeente-openbare-orde"]
    assert decision.policy_version == new.version  # the warmed memo is the new version's
    assert (policy.active.hits, policy.active.misses) == (1, 0)


def test_watcher_switches_to_a_published_bundle_and_fails_closed_on_a_bad_one(
    tmp_path: Path,
) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    policy = SwitchablePolicy(EmbeddedPolicyEngine.from_dir(POLICIES))
    watcher = PolicyWatcher(settings, "unused:1", policy)
    candidate = bundle_from_dir(
        add_clear_field(copy_policies(tmp_path / "p"), AGREEMENT, "address")
    )
    watcher.apply(candidate.to_bytes())
    assert policy.version == candidate.version
    broken = bundle_from_dir(break_syntax(copy_policies(tmp_path / "b")))
    watcher.apply(broken.to_bytes())
    assert policy.version == broken.version
    with pytest.raises(PolicyError, match="could not be loaded"):
        policy.decide(NUISANCE)
    watcher.apply(b"garbage")
    with pytest.raises(PolicyError):
        policy.decide(NUISANCE)
    watcher.apply(candidate.to_bytes())  # the fix
    assert policy.decide(NUISANCE)["gemeente-openbare-orde"].policy_version == candidate.version


def test_broken_policy_always_fails() -> None:
    with pytest.raises(PolicyError, match="retry-parked"):
        BrokenPolicy("sha256:x", "boom").decide(NUISANCE)


def test_consent_reaches_the_policy_and_gates_the_consent_agreements() -> None:
    from policy_support import registry
    from signalhub.schema.registry import policy_attributes

    schema = registry().signal("debt_signal")
    assert schema.version == 2
    payload = {"debt_kind": "rent", "months_in_arrears": 4, "consent": True, "subject_bsn": "1"}
    attributes = policy_attributes(schema, payload, TODAY)
    assert attributes["consent"] is True
    assert "subject_bsn" not in attributes
    zvh = {
        "id": "zvh-casework",
        "subscriber": "zvh",
        "purpose": "casework",
        "legal_basis": "Wgs art. 3 / convenant ZVH Maastricht art. 5",
    }
    engine = EmbeddedPolicyEngine.from_dir(POLICIES)
    for consent, allowed in ((True, True), (None, False), (False, False)):
        attrs = {**attributes, "consent": consent}
        decision = engine.decide(
            build_input("debt_signal", "schuldhulpverlening", attrs, [zvh], TODAY)
        )
        assert decision["zvh-casework"].allow is allowed


@pytest.mark.integration
def test_a_new_empty_broker_gets_the_last_published_version_back(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    candidate = add_clear_field(copy_policies(tmp_path / "p"), AGREEMENT, "address")
    with EmbeddedBroker() as first:
        event = publish_policy(
            settings, first.bootstrap_servers, candidate, message="m", author="a", today=TODAY
        )
    with EmbeddedBroker() as second:  # a restarted embedded hub: the policies topic is gone
        assert read_current_bundle(second.bootstrap_servers) is None
        assert restore_policy_in_force(settings, second.bootstrap_servers) == event.version
        current = read_current_bundle(second.bootstrap_servers)
        assert current is not None
        assert PolicyBundle.from_bytes(current).version == event.version
        assert restore_policy_in_force(settings, second.bootstrap_servers) is None


def test_nothing_is_restored_before_anything_was_published(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    with EmbeddedBroker() as broker:
        assert restore_policy_in_force(settings, broker.bootstrap_servers) is None
        assert read_current_bundle(broker.bootstrap_servers) is None
