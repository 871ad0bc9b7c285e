"""policy diff: replaying recorded signals names exactly the fields a candidate changes."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_support import AGREEMENT, POLICIES, add_clear_field, copy_policies, registry
from signalhub.apps.demo import find_inputs
from signalhub.cli import cli
from signalhub.config import load_settings
from signalhub.connector.definition import load_definitions
from signalhub.connector.publisher import CollectingPublisher
from signalhub.connector.runner import ConnectorRunner, RejectList
from signalhub.connector.sources import open_source
from signalhub.delivery.reader import to_json_value
from signalhub.errors import PolicyError
from signalhub.policy.decision import Decision, build_input
from signalhub.policy.diff import FieldChange, diff_policies, read_traffic_file
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.schema import codec
from signalhub.schema.registry import policy_attributes
from signalhub.subscriptions import by_signal_type, load_subscriptions

TODAY = date(2026, 6, 1)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample agencies' signals, as the connectors publish them, decoded to JSON Lines."""
    settings = load_settings()
    reg = registry()
    definitions = load_definitions(settings.connectors_dir)
    publisher = CollectingPublisher()
    scratch = tmp_path_factory.mktemp("traffic")
    for name, location in find_inputs(definitions, None, settings.connectors_dir):
        runner = ConnectorRunner(
            definitions[name], reg, publisher, rejects=RejectList(), max_record_bytes=65536
        )
        runner.run(open_source(definitions[name], location, state=scratch / f"{name}.sqlite"))
    path = scratch / "traffic.jsonl"
    with path.open("w") as handle:
        for _, _, value in publisher.sent:
            _, record = codec.decode(reg, value)
            handle.write(json.dumps(to_json_value(record)) + "\n")
    return path


def _subscriptions() -> Any:
    settings = load_settings()
    return by_signal_type(load_subscriptions(settings.subscriptions_file))


def test_candidate_adding_one_field_reports_exactly_that_field(
    traffic: Path, tmp_path: Path
) -> None:
    candidate = add_clear_field(copy_policies(tmp_path / "policies"), AGREEMENT, "address")
    signals = list(read_traffic_file(traffic))
    nuisance = sum(1 for s in signals if s["envelope"]["signal_type"] == "nuisance_report")
    assert nuisance > 0
    report = diff_policies(
        registry(),
        _subscriptions(),
        EmbeddedPolicyEngine.from_dir(POLICIES),
        EmbeddedPolicyEngine.from_dir(candidate),
        signals,
        TODAY,
    )
    assert report.signals == len(signals)
    assert dict(report.changes) == {
        FieldChange("gemeente", "nuisance_report", "address", "withheld", "clear"): nuisance
    }
    assert not report.decisions
    assert not report.errors
    assert report.by_kind("newly disclosed")
    assert "gemeente  nuisance_report.address" in report.render()


def test_withholding_and_pseudonymising_are_reported(traffic: Path, tmp_path: Path) -> None:
    candidate = copy_policies(tmp_path / "policies")
    path = candidate / "data" / "agreements.json"
    agreements = json.loads(path.read_text())
    entry = agreements["nuisance_report/politie/public_order_enforcement"]
    entry["fields"] = [f for f in entry["fields"] if f not in ("subject_name", "address")]
    entry["pseudonymise"] = [*entry["pseudonymise"], "subject_name"]
    path.write_text(json.dumps(agreements))
    report = diff_policies(
        registry(),
        _subscriptions(),
        EmbeddedPolicyEngine.from_dir(POLICIES),
        EmbeddedPolicyEngine.from_dir(candidate),
        read_traffic_file(traffic),
        TODAY,
    )
    kinds = {(c.subscriber, c.field, c.kind) for c in report.changes}
    assert kinds == {
        ("politie", "address", "newly withheld"),
        ("politie", "subject_name", "clear -> pseudonymised"),
    }


def test_identical_candidate_reports_no_difference(traffic: Path) -> None:
    engine = EmbeddedPolicyEngine.from_dir(POLICIES)
    report = diff_policies(
        registry(), _subscriptions(), engine, engine, read_traffic_file(traffic), TODAY
    )
    assert report.empty
    assert report.signals > 0
    assert "no differences" in report.render()


def test_diff_replays_at_least_20000_signals_per_second(traffic: Path, tmp_path: Path) -> None:
    candidate = add_clear_field(copy_policies(tmp_path / "policies"), AGREEMENT, "address")
    base = list(read_traffic_file(traffic))
    signals = base * (60_000 // len(base) + 1)
    started = time.perf_counter()
    report = diff_policies(
        registry(),
        _subscriptions(),
        EmbeddedPolicyEngine.from_dir(POLICIES),
        EmbeddedPolicyEngine.from_dir(candidate),
        signals,
        TODAY,
    )
    rate = report.signals / (time.perf_counter() - started)
    print(f"policy diff: {report.signals} signals at {rate:.0f} signals/s")
    assert report.signals == len(signals)
    assert rate >= 20_000, f"{rate:.0f} signals/s"


def test_cli_diff_on_a_traffic_file(traffic: Path, tmp_path: Path) -> None:
    candidate = add_clear_field(copy_policies(tmp_path / "policies"), AGREEMENT, "address")
    result = CliRunner().invoke(
        cli,
        ["policy", "diff", "--candidate", str(candidate), "--traffic", str(traffic)],
        env={"SIGNALHUB_STATE_DIR": str(tmp_path / "state"), "SIGNALHUB_BOOTSTRAP_SERVERS": ""},
    )
    assert result.exit_code == 0, result.output
    assert "newly disclosed:" in result.output
    assert "gemeente  nuisance_report.address" in result.output
    assert "newly withheld:" not in result.output


class HashingPolicy:
    """A policy whose every answer hangs on the exact JSON text of the signal it is asked about.

    It records that text per evaluation, so a test sees which inputs the diff told apart.
    """

    def __init__(self, salt: str, *, undecided_share: int = 0) -> None:
        self.version = f"test:{salt}"
        self.asked: list[str] = []
        self._salt = salt
        self._undecided_share = undecided_share

    def decide(self, policy_input: Any) -> dict[str, Decision]:
        text = json.dumps(policy_input["signal"], sort_keys=True)
        self.asked.append(text)
        digest = hashlib.sha256(f"{self._salt}\n{text}".encode()).digest()
        if self._undecided_share and digest[1] % self._undecided_share == 0:
            raise PolicyError("cannot decide")
        allow = digest[0] % 2 == 0
        fields = ("debt_kind", "months_in_arrears") if allow else ()
        return {
            sub["id"]: Decision(allow, fields, (), (), self.version, "test", "test")
            for sub in policy_input["subscriptions"]
        }


def _debt_signal(source: str = "schuldhulpverlening", **payload: Any) -> dict[str, Any]:
    """A debt signal as JSON traffic carries it, with only the fields a policy may see."""
    return {
        "envelope": {"signal_type": "debt_signal", "source_agency": source},
        "payload": {"debt_kind": "rent", "months_in_arrears": 3, "consent": True, **payload},
    }


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (True, 1),
        (False, 0),
        (1, 1.0),
        (0.0, -0.0),
        ("1", 1),
        (None, False),
        ([1], [True]),
        ({"a": 1}, {"a": True}),
    ],
    ids=[
        "true-1",
        "false-0",
        "int-float",
        "zero-minus-zero",
        "text-number",
        "null-false",
        "list-items",
        "object-members",
    ],
)
def test_signals_differing_in_one_attribute_are_decided_apart(one: Any, other: Any) -> None:
    before, after = HashingPolicy("before"), HashingPolicy("after")
    signals = [_debt_signal(consent=one), _debt_signal(consent=other), _debt_signal(consent=one)]
    report = diff_policies(registry(), _subscriptions(), before, after, signals, TODAY)
    assert report.signals == 3
    assert len(before.asked) == len(set(before.asked)) == 2
    assert before.asked == after.asked


_VALUES = [None, True, False, 0, 1, 2, 0.0, -0.0, 1.0, "1", "rent", [1], [True], {"a": 1}, {}]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["schuldhulpverlening", "woningcorporatie"]),
            st.sampled_from(_VALUES),
            st.sampled_from(_VALUES),
            st.sampled_from(_VALUES),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_memoised_diff_matches_deciding_every_signal(rows: list[tuple[str, Any, Any, Any]]) -> None:
    signals = [
        _debt_signal(source, debt_kind=kind, months_in_arrears=months, consent=consent)
        for source, kind, months, consent in rows
    ]
    reg, subscriptions = registry(), _subscriptions()
    schema = reg.signal("debt_signal")
    views = [s.policy_view() for s in subscriptions["debt_signal"] if s.active]
    before, after = HashingPolicy("before"), HashingPolicy("after", undecided_share=4)
    flips: dict[tuple[str, str], int] = {}
    undecided = 0
    for signal in signals:  # the plain path: every signal decided on its own
        attributes = policy_attributes(schema, signal["payload"], TODAY)
        source = signal["envelope"]["source_agency"]
        policy_input = build_input("debt_signal", source, attributes, views, TODAY)
        old = before.decide(policy_input)
        try:
            new = after.decide(policy_input)
        except PolicyError:
            undecided += 1
            continue
        for sub_id, decision in old.items():
            if decision.allow != new[sub_id].allow:
                flip = (sub_id, "allow -> deny" if decision.allow else "deny -> allow")
                flips[flip] = flips.get(flip, 0) + 1
    distinct = set(before.asked)
    before.asked.clear()

    report = diff_policies(reg, subscriptions, before, after, signals, TODAY)

    assert report.signals == len(signals)
    assert dict(report.decisions) == flips
    assert report.errors.get("debt_signal", 0) == undecided
    assert sorted(before.asked) == sorted(distinct)  # each distinct input decided exactly once


def test_policy_in_force_that_cannot_decide_fails_the_diff() -> None:
    before, after = HashingPolicy("before", undecided_share=1), HashingPolicy("after")
    signals = [_debt_signal(months_in_arrears=months) for months in range(50)]
    with pytest.raises(PolicyError, match="cannot decide"):
        diff_policies(registry(), _subscriptions(), before, after, signals, TODAY)
    assert len(before.asked) == 1  # the first failure stops the policy in force
