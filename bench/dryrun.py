"""Dry-run speed: a policy change evaluated over recorded signals, no broker in the loop.

``signalhub policy diff`` replays recorded signals through the current and a candidate policy and
reports what would change. This benchmark times its :func:`~signalhub.policy.diff.diff_policies`
over recorded signals, decoding the recorded bytes included.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from bench.common import Mode, Row
from bench.workload import SignalFactory
from signalhub.config import Settings, load_settings
from signalhub.policy.diff import diff_policies
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.schema.codec import decode
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions

__all__ = ["record_signals", "replay", "run"]

_NOTE = "signalhub.policy.diff.diff_policies over decoded recorded signals, current vs candidate"


def run(mode: Mode, registry: SchemaRegistry) -> list[Row]:
    settings = load_settings(bootstrap_servers="")
    recorded = record_signals(registry, mode.dryrun_signals)
    seconds, changed = replay(settings, registry, recorded)
    return [
        Row(
            "dry-run",
            "signals/s",
            len(recorded) / seconds,
            "sig/s",
            _NOTE,
            {"signals": len(recorded), "seconds": seconds, "changed": changed},
        )
    ]


def record_signals(registry: SchemaRegistry, count: int) -> list[bytes]:
    """``count`` encoded signals, as a dry run reads them back from the signal topics."""
    pool = [s.value for s in SignalFactory(registry, seed=13).signals(min(count, 20_000))]
    return [pool[i % len(pool)] for i in range(count)]


def replay(
    settings: Settings, registry: SchemaRegistry, recorded: Sequence[bytes]
) -> tuple[float, int]:
    """(seconds, signals whose decisions differ) for current vs candidate policy.

    The clock covers decoding the recorded bytes too, as a diff over the signal topics must.
    """
    subscriptions = by_signal_type(load_subscriptions(settings.subscriptions_file))
    today = datetime.now(UTC).date()
    before = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
    after = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
    try:
        started = time.perf_counter()
        signals = (decode(registry, value)[1] for value in recorded)
        report = diff_policies(registry, subscriptions, before, after, signals, today)
        seconds = time.perf_counter() - started
    finally:
        before.close()
        after.close()
    return seconds, sum(report.decisions.values()) + sum(report.errors.values())
