"""Dry-run a candidate policy: replay recorded signals and report what would change, per field.

For each recorded signal the policy input is built exactly as the enforcer builds it, decided by
the policy in force and by the candidate, and each subscription's projection compared field by
field: *newly disclosed* (withheld -> clear or pseudonymised), *newly withheld*, and
*clear -> pseudonymised* / *pseudonymised -> clear*. No broker is in the loop and the comparison
is memoised per distinct input (signal type, source, attributes): real traffic has few distinct
inputs, so replaying is dominated by building the attributes.

A candidate that cannot decide (a PolicyError) is reported as the signals it would park, with
every field of every subscription withheld — which is what the enforcer would do.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from signalhub import codec
from signalhub.errors import PolicyError, SignalhubError
from signalhub.policy import Decision, PolicyEngine, build_input
from signalhub.projection import plan_projection
from signalhub.schema import SchemaRegistry, SignalSchema, policy_attributes
from signalhub.subscriptions import Subscription
from signalhub.topic_reader import assign_topic, drain, open_consumer
from signalhub.types import Record

__all__ = [
    "CLEAR",
    "PSEUDONYMISED",
    "WITHHELD",
    "DiffReport",
    "FieldChange",
    "diff_policies",
    "read_traffic_file",
    "read_traffic_topics",
]

CLEAR, PSEUDONYMISED, WITHHELD = "clear", "pseudonymised", "withheld"
_KINDS = {
    (WITHHELD, CLEAR): "newly disclosed",
    (WITHHELD, PSEUDONYMISED): "newly disclosed",
    (CLEAR, WITHHELD): "newly withheld",
    (PSEUDONYMISED, WITHHELD): "newly withheld",
    (CLEAR, PSEUDONYMISED): "clear -> pseudonymised",
    (PSEUDONYMISED, CLEAR): "pseudonymised -> clear",
}


@dataclass(frozen=True, order=True)
class FieldChange:
    """One field of one signal type that a subscriber would receive differently."""

    subscriber: str
    signal_type: str
    field: str
    before: str
    after: str

    @property
    def kind(self) -> str:
        return _KINDS[(self.before, self.after)]


@dataclass
class DiffReport:
    """What the candidate changes on the replayed traffic (counts are signals)."""

    before_version: str
    after_version: str
    signals: int = 0
    changes: Counter[FieldChange] = field(default_factory=Counter)
    #: (subscription id, "allow -> deny" | "deny -> allow") -> signals
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: signal type -> signals the candidate could not decide (they would be parked)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    elapsed_s: float = 0.0

    def by_kind(self, kind: str) -> dict[FieldChange, int]:
        return {c: n for c, n in sorted(self.changes.items()) if c.kind == kind}

    @property
    def empty(self) -> bool:
        return not self.changes and not self.decisions and not self.errors

    def render(self) -> str:
        """The report as text, per subscriber and field."""
        lines = [
            f"policy diff: {self.before_version} (in force) -> {self.after_version} (candidate)",
            f"replayed {self.signals} signals ({self.skipped} skipped) in {self.elapsed_s:.2f} s",
        ]
        for kind in ("newly disclosed", "newly withheld", "clear -> pseudonymised"):
            lines += self._section(kind)
        lines += self._section("pseudonymised -> clear")
        if self.decisions:
            lines.append("decisions that change:")
            for (sub_id, flip), count in sorted(self.decisions.items()):
                lines.append(f"  {sub_id:<40} {flip:<16} {count:>7} signals")
        if self.errors:
            lines.append("the candidate cannot decide (signals would be parked):")
            for signal_type, count in sorted(self.errors.items()):
                lines.append(f"  {signal_type:<40} {count:>7} signals")
        if self.empty:
            lines.append("no differences: every subscriber would receive the same fields")
        return "\n".join(lines)

    def _section(self, kind: str) -> list[str]:
        changes = self.by_kind(kind)
        if not changes:
            return []
        out = [f"{kind}:"]
        for change, count in changes.items():
            where = f"{change.subscriber}  {change.signal_type}.{change.field}"
            out.append(f"  {where:<60} {change.before} -> {change.after}  {count:>7} signals")
        return out


def _states(schema: SignalSchema, decision: Decision) -> dict[str, str]:
    projection = plan_projection(schema, decision)
    states = dict.fromkeys(projection.clear, CLEAR)
    states.update(dict.fromkeys(projection.pseudonymised, PSEUDONYMISED))
    states.update(dict.fromkeys(projection.withheld, WITHHELD))
    return states


_Outcome = tuple[tuple[FieldChange, ...], tuple[tuple[str, str], ...], bool]


class _Comparer:
    """Decides one distinct input under both policies and remembers the difference."""

    def __init__(
        self,
        registry: SchemaRegistry,
        subscriptions: Mapping[str, Sequence[Subscription]],
        before: PolicyEngine,
        after: PolicyEngine,
        today: date,
    ) -> None:
        self._registry = registry
        self._before, self._after = before, after
        self._today = today
        self._subs = {t: [s for s in subs if s.active] for t, subs in subscriptions.items()}
        self._views = {t: [s.policy_view() for s in subs] for t, subs in self._subs.items()}
        self._memo: dict[tuple[Any, ...], _Outcome] = {}

    def compare(self, signal_type: str, source: str, attributes: dict[str, Any]) -> _Outcome:
        key: tuple[Any, ...] = (signal_type, source, *sorted(attributes.items()))
        try:
            outcome = self._memo.get(key)
        except TypeError:  # a list-valued attribute: key on its canonical JSON instead
            key = (signal_type, source, json.dumps(attributes, sort_keys=True, default=str))
            outcome = self._memo.get(key)
        if outcome is None:
            outcome = self._memo[key] = self._evaluate(signal_type, source, attributes)
        return outcome

    def _evaluate(self, signal_type: str, source: str, attributes: dict[str, Any]) -> _Outcome:
        subs = self._subs.get(signal_type, [])
        if not subs:
            return (), (), False
        schema = self._registry.signal(signal_type)
        policy_input = build_input(
            signal_type, source, attributes, self._views[signal_type], self._today
        )
        before = self._before.decide(policy_input)  # the policy in force must decide
        try:
            after: dict[str, Decision] | None = self._after.decide(policy_input)
        except PolicyError:
            after = None
        changes: list[FieldChange] = []
        flips: list[tuple[str, str]] = []
        for sub in subs:
            old = before[sub.id]
            new = after.get(sub.id) if after is not None else None
            old_states = _states(schema, old)
            new_states = (
                _states(schema, new) if new is not None else dict.fromkeys(old_states, WITHHELD)
            )
            if new is not None and old.allow != new.allow:
                flips.append((sub.id, "allow -> deny" if old.allow else "deny -> allow"))
            for name, was in old_states.items():
                now = new_states[name]
                if was != now:
                    changes.append(FieldChange(sub.subscriber, signal_type, name, was, now))
        return tuple(changes), tuple(flips), after is None


def diff_policies(
    registry: SchemaRegistry,
    subscriptions: Mapping[str, Sequence[Subscription]],
    before: PolicyEngine,
    after: PolicyEngine,
    signals: Iterable[Record],
    today: date,
) -> DiffReport:
    """Replay ``signals`` (decoded signal records) through both policies; see the module doc."""
    report = DiffReport(before.version, after.version)
    comparer = _Comparer(registry, subscriptions, before, after, today)
    schemas: dict[str, SignalSchema] = {}
    birth_fields: dict[str, list[str]] = {}
    started = time.perf_counter()
    for signal in signals:
        try:
            envelope, payload = signal["envelope"], signal["payload"]
            signal_type = envelope["signal_type"]
            schema = schemas.get(signal_type)
            if schema is None:
                schema = schemas[signal_type] = registry.signal(signal_type)
                birth_fields[signal_type] = [
                    s.name for s in schema.payload_fields if s.pii == "birth_date"
                ]
            for name in birth_fields[signal_type]:
                value = payload.get(name)
                if isinstance(value, str):  # JSON traffic carries dates as ISO text
                    payload = {**payload, name: date.fromisoformat(value)}
            attributes = policy_attributes(schema, payload, today)
            source = str(envelope["source_agency"])
        except (KeyError, TypeError, ValueError, SignalhubError):
            report.skipped += 1
            continue
        changes, flips, failed = comparer.compare(signal_type, source, attributes)
        report.signals += 1
        report.changes.update(changes)
        report.decisions.update(flips)
        if failed:
            report.errors[signal_type] += 1
    report.elapsed_s = time.perf_counter() - started
    return report


def read_traffic_file(path: Path) -> Iterator[Record]:
    """Decoded signals from a JSON Lines file (one ``{"envelope", "payload"}`` per line)."""
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise SignalhubError(
                            f"{path}:{number}: not JSON ({exc}) — one decoded signal per line"
                        ) from exc
    except OSError as exc:
        raise SignalhubError(f"cannot read traffic file {path}: {exc}") from exc


def read_traffic_topics(
    bootstrap_servers: str, registry: SchemaRegistry, *, idle_ms: int = 1000
) -> Iterator[Record]:
    """Decoded signals from every ``signals.<type>`` topic, read until idle.

    Records that do not decode are skipped (the enforcer dead-letters them anyway).
    """
    consumer = open_consumer(bootstrap_servers, client_id="signalhub-policy-diff")
    try:
        partitions = []
        for signal_type in registry.signal_types():
            partitions += assign_topic(consumer, registry.signal(signal_type).topic)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        for message in drain(consumer, idle_ms=idle_ms):
            try:
                _, record = codec.decode(registry, message.value or b"")
            except SignalhubError:
                continue
            yield record
    finally:
        consumer.close()
