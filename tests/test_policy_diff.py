"""policy diff: replaying recorded signals names exactly the fields a candidate changes."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from policy_support import AGREEMENT, POLICIES, add_clear_field, copy_policies, registry
from signalhub import codec
from signalhub.cli import cli
from signalhub.config import load_settings
from signalhub.connector.definition import load_definitions
from signalhub.connector.publisher import CollectingPublisher
from signalhub.connector.runner import ConnectorRunner, RejectList
from signalhub.connector.sources import open_source
from signalhub.delivery.reader import to_json_value
from signalhub.demo import find_inputs
from signalhub.policy import EmbeddedPolicyEngine
from signalhub.policy_diff import FieldChange, diff_policies, read_traffic_file
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
    from signalhub.cli import _mount_subcommands

    _mount_subcommands()
    result = CliRunner().invoke(
        cli,
        ["policy", "diff", "--candidate", str(candidate), "--traffic", str(traffic)],
        env={"SIGNALHUB_STATE_DIR": str(tmp_path / "state"), "SIGNALHUB_BOOTSTRAP_SERVERS": ""},
    )
    assert result.exit_code == 0, result.output
    assert "newly disclosed:" in result.output
    assert "gemeente  nuisance_report.address" in result.output
    assert "newly withheld:" not in result.output
