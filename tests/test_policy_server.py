"""The OPA-server backend against the OPA-REST server in a thread; memo and corpus equivalence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from policy_support import POLICIES, break_syntax, copy_policies
from signalhub.config import load_settings
from signalhub.errors import PolicyError
from signalhub.policy.bundle import bundle_from_dir
from signalhub.policy.corpus import compare_engines, policy_corpus
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.policy.memo import MemoisedPolicy
from signalhub.policy.opa_backend import OpaServerPolicyEngine, opa_client_for, upload_policy
from signalhub.policy.rest_server import PolicyServer
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions

TODAY = date(2026, 6, 1)


@pytest.fixture(scope="module")
def server() -> Iterator[PolicyServer]:
    with PolicyServer() as running:
        yield running


@pytest.fixture(scope="module")
def corpus() -> list[object]:
    settings = load_settings()
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    subs = by_signal_type(load_subscriptions(settings.subscriptions_file))
    return list(policy_corpus(registry, subs, TODAY))


def _server_engine(server: PolicyServer, policies: Path) -> OpaServerPolicyEngine:
    client = opa_client_for(server.url)
    bundle = bundle_from_dir(policies)
    upload_policy(client, bundle.files)
    return OpaServerPolicyEngine(client, bundle.version)


def test_corpus_covers_every_type_and_attribute_value(corpus: list[object]) -> None:
    types = {case.signal_type for case in corpus}  # type: ignore[attr-defined]
    registry = SchemaRegistry.from_dir(load_settings().schemas_dir)
    assert types == set(registry.signal_types())  # every type has a subscription to decide
    consent = {case.attributes.get("consent") for case in corpus}  # type: ignore[attr-defined]
    assert consent >= {True, False, None}


def test_server_backend_decides_like_the_embedded_engine(
    server: PolicyServer, corpus: list[object]
) -> None:
    embedded = EmbeddedPolicyEngine.from_dir(POLICIES)
    remote = _server_engine(server, POLICIES)
    compared, differences = compare_engines(embedded, remote, corpus)  # type: ignore[arg-type]
    assert compared == len(corpus) > 1000
    assert differences == []
    any_input = corpus[0].policy_input  # type: ignore[attr-defined]
    assert {d.policy_version for d in remote.decide(any_input).values()} == {embedded.version}


def test_memoised_and_unmemoised_decide_identically_on_the_corpus(corpus: list[object]) -> None:
    engine = EmbeddedPolicyEngine.from_dir(POLICIES)
    memo = MemoisedPolicy(EmbeddedPolicyEngine.from_dir(POLICIES), maxsize=64)
    twice = [case for case in corpus for _ in range(2)] + corpus[:10]
    compared, differences = compare_engines(engine, memo, twice)  # type: ignore[arg-type]
    assert differences == []
    assert compared == len(twice)
    # each case twice in a row: one miss, one hit; the first ten again: evicted, so misses
    assert (memo.hits, memo.misses) == (len(corpus), len(corpus) + 10)
    assert len(memo) == 64


def test_compare_engines_reports_a_difference(tmp_path: Path, corpus: list[object]) -> None:
    from policy_support import AGREEMENT, add_clear_field

    changed = add_clear_field(copy_policies(tmp_path / "p"), AGREEMENT, "address")
    _, differences = compare_engines(
        EmbeddedPolicyEngine.from_dir(POLICIES),
        EmbeddedPolicyEngine.from_dir(changed),
        corpus,  # type: ignore[arg-type]
    )
    assert differences
    assert {case.signal_type for case, _ in differences} == {"nuisance_report"}


def test_syntax_error_upload_is_refused_and_old_policy_keeps_serving(
    tmp_path: Path, corpus: list[object]
) -> None:
    with PolicyServer() as own:
        remote = _server_engine(own, POLICIES)
        broken = break_syntax(copy_policies(tmp_path / "p"))
        with pytest.raises(PolicyError, match="refused"):
            upload_policy(opa_client_for(own.url), bundle_from_dir(broken).files)
        assert remote.decide(corpus[0].policy_input)  # type: ignore[attr-defined]


def test_undefined_result_fails_closed(tmp_path: Path) -> None:
    with PolicyServer() as empty:
        remote = OpaServerPolicyEngine(opa_client_for(empty.url), "sha256:none")
        with pytest.raises(PolicyError, match="undefined"):
            remote.decide({"subscriptions": [{"id": "a"}], "signal": {}, "now": "2026-01-01"})


def test_unreachable_server_fails_closed() -> None:
    remote = OpaServerPolicyEngine(opa_client_for("http://127.0.0.1:9", timeout_s=0.5), "v")
    with pytest.raises(PolicyError, match="query failed"):
        remote.decide({"subscriptions": [{"id": "a"}], "signal": {}, "now": "2026-01-01"})


def test_server_rest_surface(server: PolicyServer) -> None:
    client = opa_client_for(server.url)
    client.update_or_create_data({"x": 1}, "scratch/thing")
    assert client.get_data("scratch/thing")["result"] == {"x": 1}
    client.update_policy_from_string(
        "package scratch\n\nimport rego.v1\n\ndouble := data.scratch.thing.x * 2\n",
        "scratch.rego",
        rego_compat=False,
    )
    assert "scratch.rego" in client.get_policies_list()
    assert client.query_rule({}, "scratch", "double") == {"result": 2}
    assert client.delete_policy("scratch.rego")
    assert client.query_rule({}, "scratch", "double") == {}
