"""Dry-run a candidate policy: replay recorded signals and report what would change, per field.

For each recorded signal the policy input is built exactly as the enforcer builds it, decided by
the policy in force and by the candidate, and each subscription's projection compared field by
field: *newly disclosed* (withheld -> clear or pseudonymised), *newly withheld*, and
*clear -> pseudonymised* / *pseudonymised -> clear*. No broker is in the loop. The signals are
first counted per distinct input (signal type, source, attributes); each distinct input is then
decided once by each policy, the candidate in a thread of its own beside the policy in force (an
evaluation releases the GIL). Real traffic has few distinct inputs, so a replay costs about
decoding the signals plus two evaluations per distinct input.

A candidate that cannot decide (a PolicyError) is reported as the signals it would park, with
every field of every subscription withheld — which is what the enforcer would do.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.enforcer.projection import plan_projection
from signalhub.errors import PolicyError, SignalhubError
from signalhub.policy.decision import Decision, build_input
from signalhub.policy.engine import PolicyEngine
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry, SignalSchema, policy_attributes
from signalhub.subscriptions import Subscription
from signalhub.types import JSON, Record
from signalhub.wire import canonical_json

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
_Key = tuple[str, str, str]


@dataclass(slots=True)
class _Input:
    """One distinct policy input of the replayed traffic, and how many signals had it."""

    signal_type: str
    source: str
    attributes: dict[str, Any]
    signals: int = 1


class _Comparer:
    """Decides distinct inputs under both policies and tells the difference."""

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

    def outcomes(self, inputs: Sequence[_Input]) -> list[_Outcome]:
        """One outcome per input, in order; the in-force policy's PolicyError propagates."""
        outcomes: list[_Outcome] = [((), (), False)] * len(inputs)  # no subscription, no change
        asked = [n for n, i in enumerate(inputs) if self._subs.get(i.signal_type)]
        views, today = self._views, self._today
        policy_inputs = [
            build_input(i.signal_type, i.source, i.attributes, views[i.signal_type], today)
            for i in (inputs[n] for n in asked)
        ]
        befores, afters = self._decide(policy_inputs)
        for n, old, new in zip(asked, befores, afters, strict=True):
            outcomes[n] = self._compare(inputs[n].signal_type, old, new)
        return outcomes

    def _decide(
        self, policy_inputs: list[JSON]
    ) -> tuple[list[dict[str, Decision]], list[dict[str, Decision] | None]]:
        # Evaluating (in Go, or on an OPA server) releases the GIL, so the candidate decides in
        # a thread of its own, side by side with the policy in force: evaluations are most of a
        # replay's time. Each engine is still called from one thread at a time.
        if self._after is self._before:
            befores = [self._before.decide(p) for p in policy_inputs]
            return befores, [_decide_or_none(self._after, p) for p in policy_inputs]
        with ThreadPoolExecutor(1, thread_name_prefix="policy-diff") as candidate:
            afters = [candidate.submit(_decide_or_none, self._after, p) for p in policy_inputs]
            try:
                befores = [self._before.decide(p) for p in policy_inputs]
            except BaseException:
                candidate.shutdown(cancel_futures=True)
                raise
            return befores, [future.result() for future in afters]

    def _compare(
        self, signal_type: str, before: dict[str, Decision], after: dict[str, Decision] | None
    ) -> _Outcome:
        schema = self._registry.signal(signal_type)
        changes: list[FieldChange] = []
        flips: list[tuple[str, str]] = []
        for sub in self._subs[signal_type]:
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


def _decide_or_none(engine: PolicyEngine, policy_input: JSON) -> dict[str, Decision] | None:
    """The candidate's decisions, or None when it cannot decide (the signal would be parked)."""
    try:
        return engine.decide(policy_input)
    except PolicyError:
        return None


def diff_policies(
    registry: SchemaRegistry,
    subscriptions: Mapping[str, Sequence[Subscription]],
    before: PolicyEngine,
    after: PolicyEngine,
    signals: Iterable[Record],
    today: date,
) -> DiffReport:
    """Replay ``signals`` (decoded signal records) through both policies; see the module doc.

    The policies decide once every signal is read, so a PolicyError of the policy in force
    (the first one in signal order) is raised at the end of the replay.
    """
    report = DiffReport(before.version, after.version)
    inputs: dict[_Key, _Input] = {}  # in order of first sight
    #: signal type -> its schema and birth date fields
    types: dict[str, tuple[SignalSchema, list[str]]] = {}
    started = time.perf_counter()
    for signal in signals:
        try:
            envelope, payload = signal["envelope"], signal["payload"]
            signal_type = envelope["signal_type"]
            known = types.get(signal_type)
            if known is None:
                schema = registry.signal(signal_type)
                births = [s.name for s in schema.payload_fields if s.pii == "birth_date"]
                known = types[signal_type] = (schema, births)
            schema, births = known
            for name in births:
                value = payload.get(name)
                if isinstance(value, str):  # JSON traffic carries dates as ISO text
                    date.fromisoformat(value)  # ValueError: not a date, skip the signal
            attributes = policy_attributes(schema, payload, today)
            source = str(envelope["source_agency"])
            # Exact: equal JSON text is an equal policy input (True, 1 and 1.0 stay apart).
            key = (signal_type, source, canonical_json(attributes))
        except (KeyError, TypeError, ValueError, SignalhubError):
            report.skipped += 1
            continue
        seen = inputs.get(key)
        if seen is None:
            inputs[key] = _Input(signal_type, source, attributes)
        else:
            seen.signals += 1
    comparer = _Comparer(registry, subscriptions, before, after, today)
    distinct = list(inputs.values())
    for seen, (changes, flips, failed) in zip(distinct, comparer.outcomes(distinct), strict=True):
        report.signals += seen.signals
        for change in changes:
            report.changes[change] += seen.signals
        for flip in flips:
            report.decisions[flip] += seen.signals
        if failed:
            report.errors[seen.signal_type] += seen.signals
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
