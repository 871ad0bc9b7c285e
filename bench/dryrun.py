"""Dry-run speed: a policy change evaluated over recorded signals, no broker in the loop.

``signalhub policy diff`` replays recorded signals through the current and a candidate policy and
reports what would change. When :mod:`signalhub.policy_diff` is importable this benchmark times
its ``diff_policies`` (plus decoding the recorded bytes); without it, it times the same work the
diff must do with the hub's own parts, and says so in the row's note: decode each recorded
signal, derive its policy attributes, build the input, take memoised decisions from two policy
versions and compare them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bench.common import Mode, Row
from bench.workload import SignalFactory
from signalhub.codec import decode
from signalhub.config import Settings, load_settings
from signalhub.policy import EmbeddedPolicyEngine, MemoisedPolicy, build_input
from signalhub.schema import SchemaRegistry, policy_attributes
from signalhub.subscriptions import by_signal_type, load_subscriptions

__all__ = ["record_signals", "replay", "run"]


def run(mode: Mode, registry: SchemaRegistry) -> list[Row]:
    settings = load_settings(bootstrap_servers="")
    recorded = record_signals(registry, mode.dryrun_signals)
    seconds, changed = replay(settings, registry, recorded)
    what = (
        "signalhub.policy_diff.diff_policies over decoded recorded signals, current vs candidate"
        if _diff_policies() is not None
        else "decode + attributes + 2 memoised policy versions + compare (no policy_diff module)"
    )
    return [
        Row(
            "dry-run",
            "signals/s",
            len(recorded) / seconds,
            "sig/s",
            what,
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
    diff_policies = _diff_policies()
    if diff_policies is not None:
        before = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
        after = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
        started = time.perf_counter()
        signals = (decode(registry, value)[1] for value in recorded)
        report = diff_policies(registry, subscriptions, before, after, signals, today)
        seconds = time.perf_counter() - started
        return seconds, sum(report.decisions.values()) + sum(report.errors.values())
    current = MemoisedPolicy(EmbeddedPolicyEngine.from_dir(settings.policies_dir))
    candidate = MemoisedPolicy(EmbeddedPolicyEngine.from_dir(settings.policies_dir))
    views = {t: [s.policy_view() for s in subs] for t, subs in subscriptions.items()}
    changed = 0
    started = time.perf_counter()
    for value in recorded:
        _, signal = decode(registry, value)
        envelope = signal["envelope"]
        schema = registry.signal(envelope["signal_type"])
        policy_input = build_input(
            schema.signal_type,
            envelope["source_agency"],
            policy_attributes(schema, signal["payload"], today),
            views.get(schema.signal_type, []),
            today,
        )
        before = current.decide(policy_input)
        after = candidate.decide(policy_input)
        if {k: (d.allow, d.fields, d.pseudonymise) for k, d in before.items()} != {
            k: (d.allow, d.fields, d.pseudonymise) for k, d in after.items()
        }:
            changed += 1
    return time.perf_counter() - started, changed


def _diff_policies() -> Any:
    """``signalhub.policy_diff.diff_policies`` when that module exists, else None."""
    try:
        from signalhub.policy_diff import diff_policies
    except ImportError:
        return None
    return diff_policies
