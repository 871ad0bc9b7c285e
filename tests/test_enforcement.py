"""The enforcer's pure core with real objects: registry, OPA policy engine, pseudonymiser.

No broker: :meth:`Enforcement.process` takes one source record and returns what to produce.
The only stand-ins are policy engines that fail (a test seam: the core only knows the
``PolicyEngine`` protocol) and a fixed clock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from hub_support import new_person, politie_row
from signalhub.audit import record as audit_record
from signalhub.config import load_settings
from signalhub.connector import Mapper, load_definitions
from signalhub.enforcer.core import Enforcement, Output, SourceRecord
from signalhub.enforcer.envelope import domain_signal_id
from signalhub.enforcer.observer import NO_OBSERVER, EnforcementObserver, RecordOutcome
from signalhub.errors import PolicyError
from signalhub.policy.decision import Decision, subscription_ids
from signalhub.policy.engine import EmbeddedPolicyEngine, PolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, by_signal_type, load_subscriptions
from signalhub.types import JSON, Record
from signalhub.wire import AUDIT_TOPIC, DLQ_TOPIC, PARKED_TOPIC, VIEW_SCHEMAS_TOPIC, delivery_id

PSEUDONYMISER = Pseudonymiser(b"k" * 32)

SETTINGS = load_settings()
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
MAX_BYTES = 4096
NUISANCE_SUBSCRIPTIONS = {
    "woningcorporatie-overlast",
    "gemeente-openbare-orde",
    "politie-handhaving",
    "jeugdzorg-overlast",
}


@pytest.fixture(scope="module")
def policy() -> Iterator[EmbeddedPolicyEngine]:
    engine = EmbeddedPolicyEngine.from_dir(SETTINGS.policies_dir)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def subscriptions() -> Mapping[str, Sequence[Subscription]]:
    return by_signal_type(load_subscriptions(SETTINGS.subscriptions_file))


@pytest.fixture
def registry() -> SchemaRegistry:
    registry = SchemaRegistry.from_dir(SETTINGS.schemas_dir)
    registry.register(audit_record.load_audit_schema(SETTINGS.schemas_dir))
    return registry


def _core(
    registry: SchemaRegistry,
    policy: PolicyEngine,
    subscriptions: Mapping[str, Sequence[Subscription]],
    *,
    observer: EnforcementObserver = NO_OBSERVER,
) -> Enforcement:
    return Enforcement(
        registry,
        subscriptions,
        policy,
        PSEUDONYMISER,
        audit_record.load_audit_schema(SETTINGS.schemas_dir),
        max_record_bytes=MAX_BYTES,
        clock=lambda: NOW,
        observer=observer,
    )


def _signal(registry: SchemaRegistry, code: str = "F354", **columns: str) -> tuple[str, Record]:
    """A politie signal as its connector maps it: (topic, decoded record)."""
    definition = load_definitions(SETTINGS.connectors_dir)["politie"]
    row = politie_row(new_person(), code, **{"ernst": "4", **columns})
    schema, record = Mapper(definition, registry, clock=lambda: NOW).map(row, "test:1")
    return schema.topic, record


def _encoded(registry: SchemaRegistry, record: Record) -> bytes:
    schema = registry.signal(record["envelope"]["signal_type"])
    return codec.encode(registry, schema.avro, record)


def _source(
    topic: str, value: bytes | None, key: bytes | None = b"k", offset: int = 7
) -> SourceRecord:
    return SourceRecord(topic, 1, offset, key, value)


def _audits(registry: SchemaRegistry, outputs: list[Output]) -> list[dict[str, Any]]:
    """The decision records of every audit entry among ``outputs``."""
    entries = [codec.decode(registry, o.value)[1] for o in outputs if o.topic == AUDIT_TOPIC]
    return [decision for entry in entries for decision in audit_record.decisions_in(entry)]


def _deliveries(outputs: list[Output]) -> dict[str, Output]:
    return {
        o.topic.removeprefix("deliveries."): o for o in outputs if o.topic.startswith("deliveries.")
    }


def _headers(output: Output) -> dict[str, str]:
    return {name: value.decode() for name, value in output.headers}


# -- decisions ------------------------------------------------------------------------------


def test_an_allowed_subscription_gets_a_delivery_and_an_allow_audit(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine, subscriptions: Any
) -> None:
    topic, signal = _signal(registry, "F354", ernst="4")
    outputs = _core(registry, policy, subscriptions).process(
        _source(topic, _encoded(registry, signal))
    )

    deliveries = _deliveries(outputs)
    assert set(deliveries) == {"woningcorporatie", "gemeente", "politie"}
    audits = {row["subscription_id"]: row for row in _audits(registry, outputs)}
    assert set(audits) == NUISANCE_SUBSCRIPTIONS
    signal_id = signal["envelope"]["signal_id"]
    for subscriber, output in deliveries.items():
        expected_id = delivery_id(signal_id, subscriber)
        assert output.key == expected_id.encode()
        assert _headers(output)["signalhub.delivery_id"] == expected_id
        assert _headers(output)["signalhub.policy_version"] == policy.version
        _, view = codec.decode(registry, output.value)
        domain = view["delivery"]["pseudonym_domain"]
        assert view["envelope"]["signal_id"] == domain_signal_id(PSEUDONYMISER, domain, signal_id)
        assert view["delivery"]["subscriber"] == subscriber
        (row,) = [r for r in audits.values() if r["subscriber"] == subscriber]
        assert (row["outcome"], row["delivery_id"]) == ("allow", expected_id)
        assert row["policy_version"] == policy.version
        assert row["source_topic"] == topic
        assert row["source_offset"] == 7
        assert row["decided_at"] == NOW
        assert row["fields_withheld"] == view["delivery"]["withheld"]
        assert set(row["fields_pseudonymised"]) <= set(view["payload"])


def test_a_signal_s_decisions_travel_as_one_audit_entry_after_its_deliveries(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine, subscriptions: Any
) -> None:
    topic, signal = _signal(registry, "F354", ernst="4")
    outputs = _core(registry, policy, subscriptions).process(
        _source(topic, _encoded(registry, signal))
    )

    assert outputs[-1].topic == AUDIT_TOPIC
    assert [o.topic for o in outputs].count(AUDIT_TOPIC) == 1
    signal_id = signal["envelope"]["signal_id"]
    assert outputs[-1].key == signal_id.encode()
    _, entry = codec.decode(registry, outputs[-1].value)
    assert entry["signal_id"] == signal_id
    assert {d["subscription_id"] for d in entry["decisions"]} == NUISANCE_SUBSCRIPTIONS
    assert {d["signal_id"] for d in entry["decisions"]} == {signal_id}


def test_a_denied_subscription_is_audited_and_receives_nothing(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine, subscriptions: Any
) -> None:
    topic, signal = _signal(registry, "F354", ernst="4")
    outputs = _core(registry, policy, subscriptions).process(
        _source(topic, _encoded(registry, signal))
    )

    assert "jeugdzorg" not in _deliveries(outputs)
    (row,) = [r for r in _audits(registry, outputs) if r["subscriber"] == "jeugdzorg"]
    assert row["outcome"] == "deny"
    assert row["delivery_id"] is None
    assert any("no agreement" in reason for reason in row["reasons"])
    assert row["fields_clear"] == row["fields_pseudonymised"] == []


def test_the_audit_refers_to_the_subject_only_by_pseudonym(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine, subscriptions: Any
) -> None:
    topic, signal = _signal(registry)
    bsn = signal["payload"]["subject_bsn"]
    outputs = _core(registry, policy, subscriptions).process(
        _source(topic, _encoded(registry, signal))
    )

    expected = Pseudonymiser(b"k" * 32).pseudonym(audit_record.AUDIT_DOMAIN, "bsn", bsn)
    for row in _audits(registry, outputs):
        assert row["subject_refs"] == [expected]
    for output in outputs:
        assert bsn.encode() not in output.value


def test_a_signal_type_nobody_subscribes_to_gets_one_deny_audit(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine
) -> None:
    topic, signal = _signal(registry)
    outputs = _core(registry, policy, {}).process(_source(topic, _encoded(registry, signal)))

    assert [o.topic for o in outputs] == [AUDIT_TOPIC]
    (row,) = _audits(registry, outputs)
    assert row["subscription_id"] == audit_record.NO_SUBSCRIPTION
    assert row["outcome"] == "deny"
    assert row["reasons"]
    assert outputs[0].key == signal["envelope"]["signal_id"].encode()


# -- the policy fails: fail closed ------------------------------------------------------------


class _BrokenPolicy:
    """A policy engine that cannot evaluate (the engine crashed, the server is down)."""

    version = "sha256:broken"

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        raise PolicyError("evaluation failed: boom")


class _ForgetfulPolicy:
    """A policy that answers, but not for every subscription it was asked about."""

    version = "sha256:forgetful"

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        return {}


@pytest.mark.parametrize("engine", [_BrokenPolicy(), _ForgetfulPolicy()], ids=["raises", "omits"])
def test_a_policy_failure_delivers_nothing_audits_errors_and_parks_the_original(
    registry: SchemaRegistry, subscriptions: Any, engine: PolicyEngine
) -> None:
    topic, signal = _signal(registry)
    value = _encoded(registry, signal)
    core = _core(registry, engine, subscriptions)

    outputs = core.process(_source(topic, value, key=b"the-key"))

    assert _deliveries(outputs) == {}
    rows = _audits(registry, outputs)
    assert {row["subscription_id"] for row in rows} == NUISANCE_SUBSCRIPTIONS
    assert {row["outcome"] for row in rows} == {"error"}
    assert all(row["policy_version"] == engine.version for row in rows)
    (parked,) = [o for o in outputs if o.topic == PARKED_TOPIC]
    assert parked.value == value
    assert parked.key == b"the-key"
    assert _headers(parked)["signalhub.reason"] == "policy_error"
    assert core.stats.parked == 1


# -- records that cannot be processed: dead letters ---------------------------------------------


def _bad_records(registry: SchemaRegistry) -> dict[str, tuple[str, bytes | None]]:
    """code -> (topic it is read from, bytes) for each way a record can be unprocessable."""
    topic, signal = _signal(registry)
    drug_topic, drug = _signal(registry, "D300")
    alien = {**signal, "envelope": {**signal["envelope"], "signal_type": "alien_report"}}
    mislabelled = {**drug, "envelope": {**drug["envelope"], "signal_type": "nuisance_report"}}
    _, big = _signal(registry, omschrijving="x" * MAX_BYTES)
    return {
        "undecodable": (topic, os.urandom(64)),
        "unknown_schema": (topic, b"\xc3\x01" + os.urandom(8) + b"\x00"),
        "empty": (topic, None),
        "oversized": (topic, _encoded(registry, big)),
        "wrong_topic": (drug_topic, _encoded(registry, signal)),
        "unknown_signal_type": (
            topic,
            codec.encode(registry, registry.signal("nuisance_report").avro, alien),
        ),
        "invalid": (
            topic,
            codec.encode(registry, registry.signal("drug_signal").avro, mislabelled),
        ),
    }


@pytest.mark.parametrize(
    "code",
    [
        "undecodable",
        "unknown_schema",
        "empty",
        "oversized",
        "wrong_topic",
        "unknown_signal_type",
        "invalid",
    ],
)
def test_an_unprocessable_record_becomes_one_dead_letter_with_its_original_bytes(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine, subscriptions: Any, code: str
) -> None:
    topic, value = _bad_records(registry)[code]
    core = _core(registry, policy, subscriptions)

    outputs = core.process(_source(topic, value, key=b"bad-key", offset=42))

    (dead,) = outputs
    assert dead.topic == DLQ_TOPIC
    assert dead.key == b"bad-key"
    assert dead.value == (value or b"")
    headers = _headers(dead)
    assert headers["signalhub.reason"] == code
    assert headers["signalhub.detail"]
    assert headers["signalhub.source.topic"] == topic
    assert (headers["signalhub.source.partition"], headers["signalhub.source.offset"]) == (
        "1",
        "42",
    )
    assert headers["signalhub.failed_at"] == NOW.isoformat()
    assert core.stats.dead_letters[code] == 1


# -- view schemas and stable ids --------------------------------------------------------------


def test_a_view_schema_is_published_once_before_the_first_delivery_that_needs_it(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine, subscriptions: Any
) -> None:
    core = _core(registry, policy, subscriptions)
    first_topic, first = _signal(registry, "F354", ernst="4")
    _, second = _signal(registry, "F354", ernst="4")

    outputs = core.process(_source(first_topic, _encoded(registry, first)))
    again = core.process(_source(first_topic, _encoded(registry, second)))

    published: dict[bytes, int] = {}
    for index, output in enumerate(outputs):
        if output.topic == VIEW_SCHEMAS_TOPIC:
            schema = json.loads(output.value)
            fingerprint = SchemaRegistry().register(schema)
            assert output.key == fingerprint.hex().encode()
            published[fingerprint] = index
        elif output.topic.startswith("deliveries."):
            fingerprint = output.value[2:10]
            assert published[fingerprint] < index, "a delivery came before its view schema"
    assert len(published) == len(_deliveries(outputs))
    assert [o for o in again if o.topic == VIEW_SCHEMAS_TOPIC] == []
    assert set(_deliveries(again)) == set(_deliveries(outputs))


def test_reprocessing_a_signal_gives_the_same_delivery_ids_and_bytes(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine, subscriptions: Any
) -> None:
    topic, signal = _signal(registry)
    record = _source(topic, _encoded(registry, signal))

    before = _core(registry, policy, subscriptions).process(record)
    after_restart = _core(registry, policy, subscriptions).process(record)

    assert _deliveries(before) == _deliveries(after_restart)
    ids = [(row["decision_id"], row["delivery_id"]) for row in _audits(registry, before)]
    assert ids == [
        (row["decision_id"], row["delivery_id"]) for row in _audits(registry, after_restart)
    ]
    assert len({decision for decision, _ in ids}) == len(ids)


class _Recorder:
    """An observer that keeps every call (the metrics exporter is the real one)."""

    def __init__(self) -> None:
        self.calls: list[tuple[SourceRecord, RecordOutcome, float]] = []

    def processed(self, record: SourceRecord, outcome: RecordOutcome, seconds: float) -> None:
        self.calls.append((record, outcome, seconds))


class _ConfusedPolicy:
    """A policy whose answers are not decisions: a bug for the core's error policy to catch."""

    version = "sha256:confused"

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        return dict.fromkeys(subscription_ids(policy_input), cast(Decision, None))


def test_the_observer_is_told_once_per_record_what_it_came_to(
    registry: SchemaRegistry, policy: EmbeddedPolicyEngine, subscriptions: Any
) -> None:
    topic, signal = _signal(registry, "F354", ernst="4")
    recorder = _Recorder()
    core = _core(registry, policy, subscriptions, observer=recorder)
    good = _source(topic, _encoded(registry, signal), offset=8)
    outputs = core.process(good)
    core.process(_source(topic, b"garbage", offset=9))

    (first, delivered, seconds), (_, dead, _) = recorder.calls
    assert first is good
    assert seconds > 0
    assert (delivered.signal_type, delivered.source_agency) == ("nuisance_report", "politie")
    assert delivered.registered_at == signal["envelope"]["registered_at"]
    assert sorted(delivered.delivered) == sorted(_deliveries(outputs))
    assert delivered.allowed + delivered.denied == len(NUISANCE_SUBSCRIPTIONS)
    assert delivered.policy_version == policy.version
    assert (delivered.dead_letter, delivered.parked, delivered.blocked) == (None, False, [])
    assert (dead.signal_type, dead.dead_letter, dead.delivered) == (None, "undecodable", [])
    assert core.stats.signals == {"nuisance_report": 1}
    assert core.stats.deliveries == dict.fromkeys(delivered.delivered, 1)
    assert core.stats.dead_letters == {"undecodable": 1}


@pytest.mark.parametrize(
    ("engine", "parked", "dead_letter"),
    [(_BrokenPolicy(), True, None), (_ConfusedPolicy(), False, "internal_error")],
    ids=["policy-error", "bug"],
)
def test_the_observer_hears_of_a_parked_signal_and_of_a_bug(
    registry: SchemaRegistry,
    subscriptions: Any,
    engine: PolicyEngine,
    parked: bool,
    dead_letter: str | None,
) -> None:
    topic, signal = _signal(registry)
    recorder = _Recorder()
    core = _core(registry, engine, subscriptions, observer=recorder)
    core.process(_source(topic, _encoded(registry, signal)))

    ((_, outcome, _),) = recorder.calls
    assert outcome.signal_type == "nuisance_report"
    assert (outcome.parked, outcome.dead_letter, outcome.delivered) == (parked, dead_letter, [])
    # a bug counts nothing but its dead letter; a parked signal is an error per subscription
    assert outcome.errors == (len(NUISANCE_SUBSCRIPTIONS) if parked else 0)
    assert outcome.policy_version == (engine.version if parked else "")
