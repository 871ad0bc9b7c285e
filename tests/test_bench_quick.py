"""The benchmark harness's pieces run on tiny inputs and produce well-formed rows.

No timing is asserted here: figures depend on the machine. What can break — the generator no
longer matching the schemas, the counting consumer missing records, the table or the ratios
going wrong — is checked on a few records (the whole file runs in a few seconds).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench.__main__ import ratios, render
from bench.common import Mode, Row, count_outputs, percentile, produce, vm_hwm_mb
from bench.dryrun import record_signals, replay
from bench.floor import FANOUT, _copies
from bench.leak_guard import _best, _scans, build_deliveries
from bench.limit import passthrough
from bench.workload import SignalFactory

from signalhub.broker.embedded import EmbeddedBroker
from signalhub.bundling import ALERT_TYPE
from signalhub.config import load_settings
from signalhub.schema.codec import decode
from signalhub.schema.registry import SchemaRegistry


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.from_dir(load_settings(bootstrap_servers="").schemas_dir)


def test_factory_makes_valid_signals_of_every_type_between_1_and_2_kb(
    registry: SchemaRegistry,
) -> None:
    signals = list(SignalFactory(registry).signals(len(registry.signal_types()) * 3))
    assert {s.signal_type for s in signals} == set(registry.signal_types()) - {ALERT_TYPE}
    for signal in signals:
        _, record = decode(registry, signal.value)
        assert record["envelope"]["signal_id"] == signal.signal_id
        assert signal.topic == f"signals.{signal.signal_type}"
        assert 900 <= len(signal.value) <= 2200


def test_factory_is_deterministic_per_seed(registry: SchemaRegistry) -> None:
    now = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    first = [s.value for s in SignalFactory(registry, seed=1, now=now).signals(5)]
    again = [s.value for s in SignalFactory(registry, seed=1, now=now).signals(5)]
    other = [s.value for s in SignalFactory(registry, seed=2, now=now).signals(5)]
    assert first == again
    assert first != other


def test_quick_mode_does_less_work_than_full() -> None:
    quick, full = Mode.of(True), Mode.of(False)
    assert quick.name == "quick"
    assert full.name == "full"
    assert quick.hub_signals < full.hub_signals
    assert quick.dryrun_signals < full.dryrun_signals


def test_ratios_divide_signalhub_by_each_baseline() -> None:
    rows = [
        Row("limit", "records/s", 40_000.0, "rec/s"),
        Row("framework floor", "records/s", 8_000.0, "rec/s"),
        Row("framework floor", f"inputs/s at {FANOUT} out", 2_000.0, "in/s"),
        Row("naive", "signals/s", 100.0, "sig/s"),
        Row("signalhub", "signals/s", 4_000.0, "sig/s"),
    ]
    found = {row.metric: row.value for row in ratios(rows)}
    assert found == {
        "signalhub ÷ limit": 0.1,
        "signalhub ÷ framework floor": 0.5,
        "signalhub ÷ fan-out floor": 2.0,
        "signalhub ÷ naive": 40.0,
    }


def test_the_fan_out_floor_sends_its_mean_number_of_copies_spread_evenly() -> None:
    copies = [_copies(index, FANOUT) for index in range(100)]
    assert sum(copies) == int(100 * FANOUT)
    assert set(copies) == {3, 4}
    assert _copies(0, 1.0) == _copies(99, 1.0) == 1


def test_ratios_are_skipped_without_a_signalhub_figure() -> None:
    assert ratios([Row("limit", "records/s", 1.0, "rec/s")]) == []


def test_render_shows_every_row_and_failures_as_a_dash() -> None:
    rows = [Row("limit", "records/s", 43_210.5, "rec/s", "raw"), Row("naive", "failed", None, "")]
    table = render(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert "43,210" in table[2]
    assert "—" in table[3]
    assert rows[0].as_json()["value"] == 43_210.5


def test_percentile_and_rss_helpers() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert math.isnan(percentile([], 50))
    assert (vm_hwm_mb(__import__("os").getpid()) or 0) > 1
    assert vm_hwm_mb(2**22 + 7) is None


def test_dry_run_replays_recorded_signals_without_changes(registry: SchemaRegistry) -> None:
    recorded = record_signals(registry, 30)
    seconds, changed = replay(load_settings(bootstrap_servers=""), registry, recorded)
    assert len(recorded) == 30
    assert seconds > 0
    assert changed == 0  # the candidate is the current policy


def test_leak_guard_bench_times_both_guards_and_neither_blocks_a_delivery(
    registry: SchemaRegistry,
) -> None:
    by_signal = build_deliveries(registry, 40)
    assert sum(len(deliveries) for deliveries in by_signal) > 40
    timed = _best(_scans(), by_signal)  # raises when a guard blocks a realistic delivery
    assert set(timed) == {"baseline", "scan_record"}
    assert all(seconds > 0 for seconds in timed.values())


@pytest.mark.integration
def test_passthrough_and_counter_see_every_record(
    broker: EmbeddedBroker, registry: SchemaRegistry, topic_factory: Callable[..., str]
) -> None:
    source, sink = topic_factory("bench-in", partitions=2), topic_factory("bench-out")
    signals = list(SignalFactory(registry).signals(40))
    sent = produce(broker.bootstrap_servers, ((source, s.key, s.value) for s in signals))
    assert set(sent) == {s.key for s in signals}
    moved, seconds = asyncio.run(passthrough(broker.bootstrap_servers, source, 2, sink, 40))
    assert moved == 40
    assert seconds > 0
    seen = count_outputs(
        broker.bootstrap_servers, {sink: 1}, until={sink: 40}, idle_s=0.2, timeout_s=20
    )
    assert seen.per_topic[sink] == 40
    assert seen.first_ms is not None
    assert seen.last_ms is not None
    assert seen.first_ms <= seen.last_ms


def test_results_dir_is_kept_in_git() -> None:
    assert (Path(__file__).resolve().parents[1] / "bench" / "results" / ".gitkeep").exists()
