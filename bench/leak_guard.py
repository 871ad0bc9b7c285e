"""Leak-guard cost per delivery, in process: the guard as it is against the guard as it was.

Realistic deliveries are built once, outside the clock: :mod:`bench.workload` signals (every type,
1-2 KB, decoded as the enforcer decodes them), the shipped subscriptions and policy, projected and
pseudonymised by the enforcer's own functions. The clock then covers what the enforcer pays for
the guard per signal (:meth:`SignalIdentifiers.of`) and per delivery (the scan), divided by the
number of deliveries. The guard as first shipped (payload only, nine ASCII digits) is kept below,
only here, as the baseline measured in the same run: the machine's speed varies by the hour, a
ratio of one run does not.

``python -m bench.leak_guard [--quick]`` or ``python -m bench --only leakguard``.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.common import Mode, Row
from bench.workload import SignalFactory
from signalhub.config import load_settings
from signalhub.enforcer import leak_guard
from signalhub.enforcer.projection import (
    Projection,
    identifier_values,
    plan_projection,
    project_payload,
)
from signalhub.policy.decision import build_input
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema.codec import decode
from signalhub.schema.registry import SchemaRegistry, SignalSchema, policy_attributes
from signalhub.subscriptions import by_signal_type, load_subscriptions
from signalhub.types import Record
from signalhub.wire import (
    DELIVERY_ID_HEADER,
    POLICY_VERSION_HEADER,
    SIGNAL_TYPE_HEADER,
    delivery_id,
)

__all__ = ["Delivery", "build_deliveries", "run"]

_ROUNDS = 9
#: Record keys in the formats of connectors/samples (politie, woningcorporatie, gemeente, SHV).
_SOURCE_REFS = ("PL2300-2024{:06d}", "WS-2024-{:04d}", "Z-2024-{:05d}", "VS-2024-{}")
_NOTE = "µs of guard per delivery (identifiers per signal + scan); best of 9 interleaved rounds"


@dataclass(frozen=True)
class Delivery:
    """One delivery as the guard sees it, and the signal it came from."""

    schema: SignalSchema
    payload: Record  # the signal's payload, for its identifiers
    projection: Projection
    record: Record  # {"envelope", "delivery", "payload"} as encoded for the subscriber
    headers: tuple[tuple[str, bytes], ...]


def run(mode: Mode, registry: SchemaRegistry) -> list[Row]:
    signals = 300 if mode.name == "quick" else 2_000
    by_signal = build_deliveries(registry, signals)
    count = sum(len(deliveries) for deliveries in by_signal)
    timed = {name: seconds / count * 1e6 for name, seconds in _best(_scans(), by_signal).items()}
    base = timed["baseline"]
    rows = [
        Row("leak guard", f"{name} µs/delivery", us, "µs", _NOTE, {"deliveries": count})
        for name, us in timed.items()
    ]
    for name, us in timed.items():
        if name != "baseline":
            rows.append(Row("leak guard", f"{name} ÷ baseline", us / base, "x", "same run"))
    return rows


def build_deliveries(registry: SchemaRegistry, signals: int) -> list[list[Delivery]]:
    """Per signal, its permitted deliveries (the shipped policy decides, as the enforcer would)."""
    settings = load_settings(bootstrap_servers="")
    subscriptions = by_signal_type(load_subscriptions(settings.subscriptions_file))
    engine = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
    pseudonymiser = Pseudonymiser(bytes(range(32)))
    today = datetime.now(UTC).date()
    found: list[list[Delivery]] = []
    try:
        for encoded in SignalFactory(registry, seed=29).signals(signals):
            schema = registry.signal(encoded.signal_type)
            signal = decode(registry, encoded.value)[1]
            payload = signal["payload"]
            # The workload's "REF-<8 digits>" keys would read as BSNs one time in eleven (an
            # eight-digit number is one); the shipped connectors' keys look like these.
            ref = _SOURCE_REFS[len(found) % len(_SOURCE_REFS)].format(len(found))
            envelope = {**signal["envelope"], "source_ref": ref}
            subs = subscriptions.get(schema.signal_type, ())
            policy_input = build_input(
                schema.signal_type,
                envelope["source_agency"],
                policy_attributes(schema, payload, today),
                [s.policy_view() for s in subs],
                today,
            )
            decisions = engine.decide(policy_input)
            deliveries = []
            for sub in subs:
                decision = decisions[sub.id]
                if not decision.allow:
                    continue
                projection = plan_projection(schema, decision)
                view = project_payload(
                    schema, projection, payload, pseudonymiser, decision.domain, today=today
                )
                the_id = delivery_id(envelope["signal_id"], sub.subscriber)
                record: Record = {
                    "envelope": envelope,
                    "delivery": {
                        "delivery_id": the_id,
                        "subscriber": sub.subscriber,
                        "purpose": sub.purpose,
                        "legal_basis": decision.legal_basis,
                        "policy_version": decision.policy_version,
                        "pseudonym_domain": decision.domain,
                        "withheld": list(projection.withheld),
                    },
                    "payload": view,
                }
                headers = (
                    (DELIVERY_ID_HEADER, the_id.encode()),
                    (SIGNAL_TYPE_HEADER, schema.signal_type.encode()),
                    (POLICY_VERSION_HEADER, decision.policy_version.encode()),
                )
                deliveries.append(Delivery(schema, payload, projection, record, headers))
            found.append(deliveries)
    finally:
        engine.close()
    return found


Scan = Callable[[list[list[Delivery]]], int]


def _best(scans: dict[str, Scan], by_signal: list[list[Delivery]]) -> dict[str, float]:
    """Seconds of each scan's fastest round; the scans take turns, so a busy moment of the
    machine slows one round of each rather than all rounds of one."""
    times: dict[str, list[float]] = {name: [] for name in scans}
    for _ in range(_ROUNDS):
        for name, scan in scans.items():
            started = time.perf_counter()
            findings = scan(by_signal)
            times[name].append(time.perf_counter() - started)
            if findings:
                raise AssertionError(f"{name} blocked {findings} realistic deliveries")
    return {name: min(seconds) for name, seconds in times.items()}


def _scans() -> dict[str, Scan]:
    return {
        "baseline": _baseline_scan,
        "scan_record": _record_scan,
    }


def _baseline_scan(by_signal: list[list[Delivery]]) -> int:
    findings = 0
    for deliveries in by_signal:
        if not deliveries:
            continue
        first = deliveries[0]
        identifiers = _BaselineIdentifiers.of(first.schema, first.payload)
        for d in deliveries:
            findings += len(_baseline(d.record["payload"], d.projection, identifiers))
    return findings


def _record_scan(by_signal: list[list[Delivery]]) -> int:
    scan_record = leak_guard.scan_record
    findings = 0
    for deliveries in by_signal:
        if not deliveries:
            continue
        first = deliveries[0]
        identifiers = leak_guard.SignalIdentifiers.of(first.schema, first.payload)
        for d in deliveries:
            findings += len(scan_record(d.record, d.headers, d.projection, identifiers))
    return findings


# -- the baseline: the guard as first shipped (payload only, nine ASCII digits), verbatim --------

_OLD_BSN = re.compile(r"(?<![0-9])[0-9](?:[ .\-]?[0-9]){8}(?![0-9])")
_OLD_PSEUDONYM = re.compile(r"pn1\.k[0-9]+\.[a-z2-7]{32}")
_OLD_SEPARATORS = re.compile(r"[\s.\-]+")
_OLD_COMPACT_KINDS = frozenset({"bsn", "postcode", "phone"})


def _old_is_bsn(digits: str) -> bool:
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    total = sum(int(d) * weight for d, weight in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


@dataclass(frozen=True)
class _OldLeak:
    field: str
    what: str


@dataclass(frozen=True)
class _OldNeedle:
    source_field: str
    kind: str
    text: str

    @property
    def compact(self) -> bool:
        return self.kind in _OLD_COMPACT_KINDS


@dataclass(frozen=True)
class _OldPrepared:
    has_bsn: bool
    loose: str
    compact: str


@dataclass(frozen=True)
class _BaselineIdentifiers:
    needles: tuple[_OldNeedle, ...]
    _prepared: dict[str, _OldPrepared] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, schema: SignalSchema, payload: Record) -> _BaselineIdentifiers:
        needles = []
        for name, (kind, value) in identifier_values(schema, payload).items():
            text = _old_compact(value) if kind in _OLD_COMPACT_KINDS else _old_loose(value)
            if len(text) >= 5:
                needles.append(_OldNeedle(name, kind, text))
        return cls(tuple(needles))

    def prepared(self, text: str) -> _OldPrepared:
        found = self._prepared.get(text)
        if found is None:
            found = self._prepared[text] = _old_prepare(text)
        return found


def _baseline(
    view: Record, projection: Projection, identifiers: _BaselineIdentifiers
) -> list[_OldLeak]:
    permitted = {
        needle.text
        for needle in identifiers.needles
        if needle.source_field in projection.clear and needle.kind != "bsn"
    }
    watched = [needle for needle in identifiers.needles if needle.text not in permitted]
    skip = set(projection.pseudonymised)
    leaks: list[_OldLeak] = []
    for name, value in view.items():
        if name in skip:
            continue
        for text in (value,) if isinstance(value, str) else _old_strings(value):
            leaks.extend(_old_scan_text(name, identifiers.prepared(text), watched))
    return leaks


def _old_prepare(text: str) -> _OldPrepared:
    if "pn1." in text:
        text = _OLD_PSEUDONYM.sub(" ", text)
    has_bsn = _OLD_BSN.search(text) is not None and any(
        _old_is_bsn(_OLD_SEPARATORS.sub("", match.group(0))) for match in _OLD_BSN.finditer(text)
    )
    return _OldPrepared(has_bsn, _old_loose(text), _old_compact(text))


def _old_scan_text(name: str, text: _OldPrepared, watched: list[_OldNeedle]) -> Iterator[_OldLeak]:
    if text.has_bsn:
        yield _OldLeak(name, "a BSN-valid number")
    for needle in watched:
        if needle.text in (text.compact if needle.compact else text.loose):
            yield _OldLeak(name, f"the {needle.kind} of {needle.source_field}")


def _old_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _old_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _old_strings(item)


def _old_loose(text: str) -> str:
    return " ".join(text.casefold().split())


def _old_compact(text: str) -> str:
    return "".join(text.casefold().split()).replace(".", "").replace("-", "")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.leak_guard", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 signals instead of 2,000")
    args = parser.parse_args()
    registry = SchemaRegistry.from_dir(load_settings(bootstrap_servers="").schemas_dir)
    for row in run(Mode.of(args.quick), registry):
        print(f"{row.metric:<28} {row.value:8.2f} {row.unit}")


if __name__ == "__main__":
    main()
