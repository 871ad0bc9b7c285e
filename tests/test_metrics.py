"""The enforcer's metrics exporter on the real enforcement core, and the health summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console_support import wrong_topic_record
from signalhub.apps.demo import prepare_settings
from signalhub.apps.enforcer import build_enforcement
from signalhub.apps.status import broker_check, health, lag
from signalhub.config import Settings, load_settings
from signalhub.enforcer.core import Enforcement, SourceRecord
from signalhub.enforcer.metrics import (
    ENFORCER_PORT_FILE,
    MetricsExporter,
    parse_metrics,
    scrape_enforcer,
)
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.policy.switch import BrokenPolicy, SwitchablePolicy
from signalhub.schema.registry import SchemaRegistry


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return prepare_settings(load_settings(state_dir=tmp_path / "state"))


@pytest.fixture
def instrumented(settings: Settings) -> Iterator[tuple[Enforcement, MetricsExporter]]:
    enforcement, metrics = build_enforcement(settings)
    exporter = metrics.serve(settings.state_dir, port=0)
    yield enforcement, exporter
    exporter.close()


def test_the_exporter_counts_what_the_core_did_and_serves_it_on_loopback(
    settings: Settings, instrumented: tuple[Enforcement, MetricsExporter]
) -> None:
    enforcement, exporter = instrumented
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    port_file = settings.state_dir / ENFORCER_PORT_FILE
    assert int(port_file.read_text()) == exporter.port
    _signal_id, value = wrong_topic_record(registry)
    for offset in range(3):  # the same signal three times: one evaluation, two memo hits
        enforcement.process(SourceRecord("signals.nuisance_report", 1, offset, b"k", value))
    enforcement.process(SourceRecord("signals.nuisance_report", 0, 7, b"k", b"garbage"))
    enforcement.process(SourceRecord("signals.drug_signal", 0, 0, b"k", value))

    text = scrape_enforcer(settings)
    assert text is not None
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"signalhub_signals", "signalhub_decisions", "signalhub_decision_seconds"} <= families
    metrics = parse_metrics(text)
    stats = enforcement.stats
    assert metrics.total("signalhub_signals_total") == sum(stats.signals.values()) == 3
    assert (
        metrics.total(
            "signalhub_signals_total", signal_type="nuisance_report", source_agency="gemeente"
        )
        == 3
    )
    assert metrics.by_label("signalhub_dead_letters_total", "reason") == {
        "undecodable": 1.0,
        "wrong_topic": 1.0,
    }
    assert metrics.total("signalhub_dead_letters_total") == 2
    version = enforcement.policy.version
    for outcome, count in stats.decisions.items():
        assert (
            metrics.total("signalhub_decisions_total", outcome=outcome, policy_version=version)
            == count
        )
    for subscriber, count in stats.deliveries.items():
        assert metrics.total("signalhub_deliveries_total", subscriber=subscriber) == count
    assert metrics.total("signalhub_decision_seconds_count") == 3
    assert metrics.total("signalhub_end_to_end_seconds_count") == sum(stats.deliveries.values())
    assert metrics.total("signalhub_policy_memo_hits_total") == 2
    assert metrics.total("signalhub_policy_memo_misses_total") == 1
    positions = {
        (labels["topic"], labels["partition"]): value
        for labels, value in metrics.labelled("signalhub_enforcer_position")
    }
    assert positions[("signals.nuisance_report", "1")] == 3
    assert positions[("signals.nuisance_report", "0")] == 8
    assert metrics.labelled("signalhub_policy_loaded") == [({"policy_version": version}, 1.0)]


def test_memo_counters_stay_monotonic_across_a_policy_switch(
    settings: Settings, instrumented: tuple[Enforcement, MetricsExporter]
) -> None:
    enforcement, _ = instrumented
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    _, value = wrong_topic_record(registry)
    record = SourceRecord("signals.nuisance_report", 0, 0, b"k", value)
    enforcement.process(record)
    enforcement.process(record)
    assert (
        parse_metrics(scrape_enforcer(settings) or "").total("signalhub_policy_memo_hits_total")
        == 1
    )
    policy = enforcement.policy
    assert isinstance(policy, SwitchablePolicy)
    policy.switch(EmbeddedPolicyEngine.from_dir(settings.policies_dir))
    enforcement.process(record)
    metrics = parse_metrics(scrape_enforcer(settings) or "")
    assert metrics.total("signalhub_policy_memo_hits_total") == 1
    assert metrics.total("signalhub_policy_memo_misses_total") == 2


def test_a_policy_that_fails_closed_shows_as_not_loaded_and_parks(
    settings: Settings, instrumented: tuple[Enforcement, MetricsExporter]
) -> None:
    enforcement, _ = instrumented
    policy = enforcement.policy
    assert isinstance(policy, SwitchablePolicy)
    policy.switch(BrokenPolicy("sha256:broken", "a rule does not compile"))
    _, value = wrong_topic_record(SchemaRegistry.from_dir(settings.schemas_dir))
    enforcement.process(SourceRecord("signals.nuisance_report", 0, 0, b"k", value))
    metrics = parse_metrics(scrape_enforcer(settings) or "")
    assert metrics.labelled("signalhub_policy_loaded") == [
        ({"policy_version": "sha256:broken"}, 0.0)
    ]
    assert metrics.total("signalhub_parked_total") == 1
    errors = metrics.total(
        "signalhub_decisions_total", outcome="error", policy_version="sha256:broken"
    )
    assert errors == enforcement.stats.decisions["error"] > 0


def test_serving_twice_returns_the_running_exporter_and_close_removes_the_port_file(
    settings: Settings,
) -> None:
    _, metrics = build_enforcement(settings)
    first = metrics.serve(settings.state_dir, port=0)
    assert metrics.serve(settings.state_dir, port=0) is first
    first.close()
    assert not (settings.state_dir / ENFORCER_PORT_FILE).exists()
    assert scrape_enforcer(settings) is None


_ENFORCER_TEXT = """\
# TYPE signalhub_enforcer_position gauge
signalhub_enforcer_position{topic="signals.a",partition="0"} 10
signalhub_enforcer_position{topic="signals.a",partition="1"} 4
# TYPE signalhub_enforcer_last_processed_timestamp_seconds gauge
signalhub_enforcer_last_processed_timestamp_seconds 1000
# TYPE signalhub_enforcer_started_timestamp_seconds gauge
signalhub_enforcer_started_timestamp_seconds 900
# TYPE signalhub_policy_loaded gauge
signalhub_policy_loaded{policy_version="sha256:abc"} 1
"""


def test_lag_is_what_a_reader_saw_minus_the_enforcer_position() -> None:
    snapshot = parse_metrics(_ENFORCER_TEXT)
    ends = {("signals.a", 0): 10, ("signals.a", 1): 9, ("signals.b", 0): 2}
    assert lag(snapshot, ends) == {"signals.a[0]": 0, "signals.a[1]": 5, "signals.b[0]": 2}


@pytest.mark.parametrize(
    ("ends", "now", "consuming"),
    [
        ({("signals.a", 0): 10}, 5000.0, True),  # no lag: idle is fine
        ({("signals.a", 0): 12}, 1010.0, True),  # lag, but processing recently
        ({("signals.a", 0): 12}, 5000.0, False),  # lag and stalled
    ],
    ids=["idle", "busy", "stalled"],
)
def test_the_enforcer_is_consuming_unless_it_has_lag_and_is_stalled(
    settings: Settings, ends: dict[tuple[str, int], int], now: float, consuming: bool
) -> None:
    report = health(settings, "", parse_metrics(_ENFORCER_TEXT), ends, now=now)
    checks = {check.name: check for check in report.checks}
    assert checks["enforcer"].ok is consuming
    assert checks["policy"].ok
    assert report.policy_version == "sha256:abc"
    assert not checks["broker"].ok  # no bootstrap servers
    assert report.ready is False
    assert "NOT READY" in report.render()


def test_an_enforcer_that_does_not_answer_is_not_ready(settings: Settings) -> None:
    report = health(settings, "127.0.0.1:1", None, {})
    assert [c.ok for c in report.checks] == [False, False, False]
    assert not broker_check("127.0.0.1:1").ok
