"""Realistic signals for the benchmarks: every signal type, 1-2 KB each, driven by the schemas.

Values are generated from each payload field's Avro type and ``pii`` / ``policy`` metadata, so a
schema change (a new field, a new enum symbol) needs no change here. People, addresses and texts
come from small pools made once with Faker ``nl_NL`` (seeded): the pools keep generation cheap,
the per-signal choices (enums, severities, birth dates, consent) keep the policy inputs as varied
as real traffic. ``codec.validate_signal`` checks every record before it is encoded.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from faker import Faker

from signalhub.bundling import ALERT_TYPE
from signalhub.schema import codec
from signalhub.schema.registry import FieldSpec, SchemaRegistry, SignalSchema
from signalhub.types import Record

__all__ = ["EncodedSignal", "SignalFactory"]

#: Which agencies report which signal type, as the shipped connectors map them (connectors/).
_SOURCES = {
    "nuisance_report": ("politie", "gemeente", "woningcorporatie"),
    "drug_signal": ("politie",),
    "intimidation_report": ("politie",),
    "debt_signal": ("schuldhulpverlening", "woningcorporatie"),
    "housing_closure": ("gemeente", "woningcorporatie"),
    "radicalisation_concern": ("gemeente",),
    "casework_referral": ("gemeente", "schuldhulpverlening"),
    "youth_protection_concern": ("jeugdzorg",),
    "school_absence": ("onderwijs",),
}
_INDICATORS = ("IND-ISOLATIE", "IND-ONLINE", "IND-UITREIS", "IND-GEWELD", "IND-IDEOLOGIE")
_POOL = 200


@dataclass(frozen=True)
class EncodedSignal:
    """One signal as a connector publishes it."""

    signal_id: str
    signal_type: str
    topic: str
    value: bytes

    @property
    def key(self) -> bytes:
        return self.signal_id.encode()


class SignalFactory:
    """Seeded generator of valid, encoded signals of every type (round-robin over the types)."""

    def __init__(
        self, registry: SchemaRegistry, seed: int = 935, now: datetime | None = None
    ) -> None:
        self._registry = registry
        self._rng = random.Random(seed)
        # One registration time per factory: reading the clock per record made two factories
        # with the same seed differ whenever they straddled a second.
        self._now = now or datetime.now(UTC).replace(microsecond=0)
        fake = Faker("nl_NL")
        fake.seed_instance(seed)
        self._names = [str(fake.name()) for _ in range(_POOL)]
        self._streets = [f"{fake.street_name()} {fake.building_number()}" for _ in range(_POOL)]
        self._texts = [
            " ".join(str(fake.paragraph(nb_sentences=8)) for _ in range(self._rng.randint(4, 9)))
            for _ in range(_POOL)
        ]
        # Agency signals only: casework_alert is derived by the hub's bundler, not reported.
        self._schemas = [s for s in registry.signals() if s.signal_type != ALERT_TYPE]

    def signals(self, count: int) -> Iterator[EncodedSignal]:
        """``count`` encoded signals, the types interleaved."""
        for index in range(count):
            yield self.one(self._schemas[index % len(self._schemas)])

    def one(self, schema: SignalSchema) -> EncodedSignal:
        record = self.record(schema)
        codec.validate_signal(self._registry, record)
        value = codec.encode(self._registry, schema.avro, record)
        envelope = record["envelope"]
        return EncodedSignal(envelope["signal_id"], schema.signal_type, schema.topic, value)

    def record(self, schema: SignalSchema) -> Record:
        rng = self._rng
        now = self._now
        envelope = {
            "signal_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "signal_type": schema.signal_type,
            "source_agency": rng.choice(_SOURCES.get(schema.signal_type, ("gemeente",))),
            "source_ref": f"REF-{rng.randrange(10**8):08d}",
            "observed_at": now - timedelta(minutes=rng.randrange(1, 10_000)),
            "registered_at": now,
            "schema_version": schema.version,
        }
        payload = {spec.name: self._value(spec) for spec in schema.payload_fields}
        return {"envelope": envelope, "payload": payload}

    # -- values, by what the schema says a field is ---------------------------------------------

    def _value(self, spec: FieldSpec) -> Any:
        rng = self._rng
        kind = _branch(spec.avro_type)
        if spec.optional and spec.pii is None and not spec.policy and rng.random() < 0.2:
            return None
        if spec.pii == "bsn":
            return _bsn(rng)
        if spec.pii == "name":
            return rng.choice(self._names)
        if spec.pii == "address":
            return f"{rng.choice(self._streets)}, Maastricht"
        if spec.pii == "postcode":
            return f"62{rng.randrange(11, 30)} {rng.choice('ABCEGHJK')}{rng.choice('LMNPRTVW')}"
        if spec.pii == "birth_date":
            return date(2024, 1, 1) - timedelta(days=rng.randrange(12 * 365, 80 * 365))
        if spec.pii == "free_text":
            return rng.choice(self._texts)[: rng.randint(850, 1600)]
        if spec.pii is not None:
            return f"{spec.pii}-{rng.randrange(10**6)}"
        return self._plain(spec, kind)

    def _plain(self, spec: FieldSpec, kind: Any) -> Any:
        rng = self._rng
        if isinstance(kind, dict):
            if kind.get("type") == "enum":
                return rng.choice(kind["symbols"])
            if kind.get("type") == "array":
                return rng.sample(_INDICATORS, rng.randint(1, 3))
            if kind.get("logicalType") == "date":
                return date(2024, 6, 1) + timedelta(days=rng.randrange(0, 365))
            kind = kind.get("type")
        if spec.name == "neighbourhood_code":
            return f"BU0935{rng.randrange(1, 10):02d}{rng.randrange(1, 8):02d}"
        if kind == "boolean":
            return rng.random() < 0.7
        if kind in ("int", "long"):
            low, high = _bounds(spec)
            return rng.randint(low, high)
        if kind == "string":
            return f"{spec.name.replace('_', ' ').title()} {rng.randrange(100)}"
        return None


def _branch(avro_type: Any) -> Any:
    """The non-null branch of an optional type (the type itself otherwise)."""
    if isinstance(avro_type, list):
        return next((t for t in avro_type if t != "null"), "null")
    return avro_type


def _bounds(spec: FieldSpec) -> tuple[int, int]:
    raw: dict[str, Any] = spec.avro_type if isinstance(spec.avro_type, dict) else {}
    low = raw.get("minimum", 1)
    high = raw.get("maximum", low + 24)
    if spec.name == "severity":
        return 1, 5
    if spec.name == "arrears_eur":
        return 80, 4500
    if spec.name == "months_in_arrears":
        return 1, 6
    return int(low), int(high)


def _bsn(rng: random.Random) -> str:
    """A nine-digit number that passes the eleven test (invented, like every value here)."""
    while True:
        digits = [rng.randrange(1, 10)] + [rng.randrange(10) for _ in range(7)]
        check = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return "".join(map(str, digits)) + str(check)
