"""The leak guard: unit checks of the scan, the wrong decision blocked on the real broker, the
shipped policy leaking nothing, and keys absent from every log line of a demo run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer, TopicPartition

from pseudonym_support import (
    BSN,
    OTHER_BSN,
    BsnInClearPolicy,
    drug,
    enforcement,
    nuisance,
    registry,
    settings,
    shipped_policy,
    signal,
    source_record,
)
from signalhub.apps.demo import Accounting, DemoReport, find_inputs, publish_inputs, run_stack
from signalhub.audit.record import decisions_in, register_audit_schemas
from signalhub.broker.admin import create_topics
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.connector.definition import load_definitions
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import read_deliveries
from signalhub.enforcer.core import SourceRecord
from signalhub.enforcer.generalise import find_bsns, is_bsn
from signalhub.enforcer.leak_guard import SignalIdentifiers, scan_record
from signalhub.enforcer.projection import Projection, identifier_values
from signalhub.errors import SignalhubError
from signalhub.pseudonym.vault import ensure_vault_key, vault_key_file
from signalhub.schema import codec
from signalhub.subscriptions import Subscription, by_signal_type, load_subscriptions, subscribers
from signalhub.types import Record
from signalhub.wire import AUDIT_TOPIC, BLOCKED_TOPIC, VIEW_SCHEMAS_TOPIC, delivery_id, header

MASTER_HEX = bytes(range(100, 132)).hex()

# --- the scan ---------------------------------------------------------------------------------


def _scan(view: Record, clear: tuple[str, ...] = (), pseudo: tuple[str, ...] = ()) -> list[str]:
    record = nuisance()
    schema = registry().signal("nuisance_report")
    identifiers = SignalIdentifiers.of(schema, record["payload"])
    projection = Projection(clear, pseudo, ())
    return [leak.describe() for leak in scan_record({"payload": view}, (), projection, identifiers)]


def test_a_bsn_valid_number_is_found_in_any_string() -> None:
    assert _scan(
        {"description": f"zie dossier bsn {OTHER_BSN[:4]}.{OTHER_BSN[4:6]}.{OTHER_BSN[6:]}"},
        clear=("description",),
    ) == ["a BSN-valid number in payload.description"]


def test_a_bsn_is_never_permitted_even_when_the_decision_says_clear() -> None:
    assert "a BSN-valid number in payload.subject_bsn" in _scan(
        {"subject_bsn": BSN}, clear=("subject_bsn",)
    )


def test_a_number_failing_the_eleven_test_is_not_a_bsn() -> None:
    assert not is_bsn("123456789")
    assert _scan({"description": "factuur 123456789"}, clear=("description",)) == []


def test_an_identifier_is_found_unless_the_decision_permits_it_in_clear() -> None:
    name = "inaya luitgardis VAN neustrië"
    assert _scan({"description": f"melding over {name}"}, clear=("description",)) == [
        "the name of subject_name in payload.description"
    ]
    assert (
        _scan(
            {"subject_name": name.title(), "description": name},
            clear=("subject_name", "description"),
        )
        == []
    )


def test_postcode_found_in_another_spelling_but_not_its_area() -> None:
    assert _scan({"description": "postcode 6225-tz"}, clear=("description",)) == [
        "the postcode of postcode in payload.description"
    ]
    assert _scan({"address": "6225"}) == []


def test_pseudonymised_fields_and_pseudonyms_in_text_are_not_mistaken_for_bsns() -> None:
    pseudonym = "pn1.k1." + "2345672" + "3" * 25  # digits of a pseudonym body
    assert _scan({"subject_bsn": pseudonym}, pseudo=("subject_bsn",)) == []
    assert _scan({"description": f"zie {pseudonym}"}, clear=("description",)) == []


def test_identifiers_are_prepared_once_per_signal_without_short_values() -> None:
    payload = nuisance(subject_name="Li")["payload"]
    identifiers = SignalIdentifiers.of(registry().signal("nuisance_report"), payload)
    assert {name for name, _ in identifiers.fields} == {"subject_bsn", "address", "postcode"}
    assert set(identifier_values(registry().signal("nuisance_report"), payload)) == {
        "subject_bsn",
        "subject_name",
        "address",
        "postcode",
    }


# --- the core: blocked, reported, audited -------------------------------------------------------


def test_wrong_decision_is_blocked_reported_and_audited_in_process() -> None:
    record = nuisance()
    outputs = enforcement(BsnInClearPolicy(shipped_policy())).process(source_record(record))
    assert not [
        o for o in outputs if o.topic.startswith("deliveries.") and o.topic != BLOCKED_TOPIC
    ]
    blocked = [o for o in outputs if o.topic == BLOCKED_TOPIC]
    assert {json.loads(o.value)["subscriber"] for o in blocked} == {
        "woningcorporatie",
        "gemeente",
        "politie",
    }
    for output in blocked:
        assert BSN.encode() not in output.value
        assert dict(output.headers)["signalhub.reason"] == b"leak_guard"
    entries = [codec.decode(registry(), o.value)[1] for o in outputs if o.topic == AUDIT_TOPIC]
    audits = [decision for entry in entries for decision in decisions_in(entry)]
    errors = [a for a in audits if a["outcome"] == "error"]
    assert len(errors) == 3
    assert all("a BSN-valid number in payload.subject_bsn" in a["reasons"][0] for a in errors)


def test_guard_off_lets_the_wrong_decision_through() -> None:
    core = enforcement(BsnInClearPolicy(shipped_policy()), leak_guard=False)
    outputs = core.process(source_record(nuisance()))
    assert not [o for o in outputs if o.topic == BLOCKED_TOPIC]
    assert any(BSN.encode() in o.value for o in outputs if o.topic == "deliveries.politie")


def test_shipped_policy_passes_the_guard_with_identifiers_in_free_text() -> None:
    record = drug(description=f"Dewi van der Klein (bsn {BSN}) woont Tongerseweg 177A, Maastricht")
    core = enforcement()
    outputs = core.process(source_record(record))
    assert not [o for o in outputs if o.topic == BLOCKED_TOPIC]
    politie = [o for o in outputs if o.topic == "deliveries.politie"]
    assert politie
    assert BSN.encode() not in politie[0].value
    payload = codec.decode(registry(), politie[0].value)[1]["payload"]
    assert "pn1.k1." in payload["description"]
    assert "Dewi van der Klein" in payload["description"]


def _subs(signal_type: str) -> list[Subscription]:
    subs = load_subscriptions(settings().subscriptions_file, registry().signal_types())
    return by_signal_type(subs)[signal_type]


# --- the real broker ----------------------------------------------------------------------------


def _read(bootstrap: str, topic: str, idle_ms: int = 1500) -> list[object]:
    consumer = open_consumer(bootstrap, client_id="leak-guard-test")
    try:
        assign_topic(consumer, topic)
        return list(drain(consumer, idle_ms=idle_ms, first_wait_ms=5000))
    finally:
        consumer.close()


def test_wrong_decision_leaking_a_bsn_is_blocked_on_the_real_broker(broker: EmbeddedBroker) -> None:
    bootstrap = broker.bootstrap_servers
    record = nuisance()
    signal_id = record["envelope"]["signal_id"]
    topic = "signals.nuisance_report"
    sinks = ["deliveries.woningcorporatie", "deliveries.gemeente", "deliveries.politie"]
    create_topics(bootstrap, [topic], partitions=settings().partitions)
    create_topics(bootstrap, [*sinks, BLOCKED_TOPIC, AUDIT_TOPIC, VIEW_SCHEMAS_TOPIC], partitions=1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        value = source_record(record).value
        sent = producer.send(topic, key=signal_id.encode(), value=value, partition=0).get(30)
        # Read the signal back from the broker, as the enforcer would, and process it there.
        consumer = open_consumer(bootstrap, client_id="leak-guard-enforcer")
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        fetched = next(drain(consumer, idle_ms=1000, first_wait_ms=5000, max_records=1))
        consumer.close()
        core = enforcement(BsnInClearPolicy(shipped_policy()))
        source = SourceRecord(
            fetched.topic, fetched.partition, fetched.offset, fetched.key, fetched.value
        )
        for output in core.process(source):
            producer.send(
                output.topic, key=output.key, value=output.value, headers=list(output.headers)
            )
        producer.flush()
    finally:
        producer.close()
    blocked = [
        m for m in _read(bootstrap, BLOCKED_TOPIC) if json.loads(m.value)["signal_id"] == signal_id
    ]
    assert {json.loads(m.value)["subscriber"] for m in blocked} == {
        "woningcorporatie",
        "gemeente",
        "politie",
    }
    assert all(header(m, "signalhub.reason") == "leak_guard" for m in blocked)
    assert all(BSN not in m.value.decode() + str(m.headers) for m in blocked)
    audit_registry = registry()
    register_audit_schemas(audit_registry, settings().schemas_dir)
    entries = [codec.decode(audit_registry, m.value)[1] for m in _read(bootstrap, AUDIT_TOPIC)]
    audits = [decision for entry in entries for decision in decisions_in(entry)]
    mine = [a for a in audits if a["signal_id"] == signal_id]
    assert sorted(a["outcome"] for a in mine) == ["deny", "error", "error", "error"]
    for sink in sinks:
        assert not [m for m in _read(bootstrap, sink, 800) if BSN.encode() in m.value]


def _identifiers(record: Record) -> dict[str, tuple[str, str]]:
    schema = registry().signal(record["envelope"]["signal_type"])
    return identifier_values(schema, record["payload"])


def test_shipped_policy_delivers_no_identifier_in_clear_unless_permitted(
    broker: EmbeddedBroker, tmp_path: Path, name_factory: Callable[[str], str]
) -> None:
    bootstrap = broker.bootstrap_servers
    run_settings = settings().model_copy(
        update={
            "state_dir": tmp_path,
            "enforcer_group": name_factory("leak-guard"),
            "master_key": None,
            "key_file": None,
        }
    )
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(MASTER_HEX + "\n")
    key_file.chmod(0o600)
    run_settings = run_settings.model_copy(update={"key_file": key_file})
    ensure_vault_key(vault_key_file(run_settings))  # the enforcer refuses to start without it
    create_topics(bootstrap, [BLOCKED_TOPIC], partitions=1)
    definitions = load_definitions(run_settings.connectors_dir)
    report = DemoReport()
    crafted = [
        drug(description=f"Verdachte Dewi van der Klein, BSN {BSN[:4]}.{BSN[4:6]}.{BSN[6:]}"),
        signal(
            "casework_referral",
            "gemeente",
            subject_bsn=OTHER_BSN,
            subject_name="Ka Wing Ho",
            address="Boschstraat 12, Maastricht",
            postcode="6211 AX",
            referral_reason="multi_problem",
            urgency="urgent",
            consent=True,
            description=f"Ka Wing Ho ({OTHER_BSN}) woont Boschstraat 12, Maastricht",
        ),
    ]
    with run_stack(run_settings, bootstrap, lambda _: None) as enforcer:
        inputs = find_inputs(definitions, None, run_settings.connectors_dir)
        publish_inputs(
            bootstrap, run_settings, registry(), definitions, inputs, report, lambda _: None
        )
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for record in crafted:
            source = source_record(record)
            producer.send(source.topic, key=source.key, value=source.value)
        producer.flush()
        producer.close()
        ids = {sid for run in report.runs for sid in run.signal_ids}
        ids |= {r["envelope"]["signal_id"] for r in crafted}
        with Accounting(bootstrap, registry(), run_settings) as accounting:
            accounting.wait_for(ids, lambda _: None, enforcer, timeout_s=120)
            audit_rows = [row for row in accounting.audit if row["signal_id"] in ids]
    inputs_by_id = {r["envelope"]["signal_id"]: r for r in crafted}
    for message in _read_signals(bootstrap):
        try:
            _, decoded = codec.decode(registry(), message.value)
        except SignalhubError:  # other tests put foreign bytes on the shared signal topics
            continue
        if decoded["envelope"]["signal_id"] in ids:
            inputs_by_id[decoded["envelope"]["signal_id"]] = decoded
    clear_by = {
        (row["signal_id"], row["subscriber"]): set(row["fields_clear"])
        for row in audit_rows
        if row["outcome"] == "allow"
    }
    assert not [row for row in audit_rows if row["outcome"] == "error"], (
        "the guard blocked a delivery"
    )
    checked = 0
    with ViewSchemaCatalog(bootstrap, registry()) as catalog:
        for name in subscribers(load_subscriptions(run_settings.subscriptions_file)):
            hub_ids = {delivery_id(sid, name): sid for sid in ids}  # envelope ids are per domain
            for delivered in read_deliveries(bootstrap, name, catalog, dedupe=True):
                signal_id = hub_ids.get(delivered.delivery_id)
                if signal_id is None:
                    continue
                checked += 1
                clear = clear_by[(signal_id, name)]
                identifiers = _identifiers(inputs_by_id[signal_id])
                for field, value in delivered.record["payload"].items():
                    if not isinstance(value, str):
                        continue
                    assert not find_bsns(value), f"a BSN in {field} to {name}"
                    for source_field, (kind, identifier) in identifiers.items():
                        if identifier.casefold() in value.casefold():
                            where = f"{kind} of {source_field} in clear in {field} to {name}"
                            assert kind != "bsn", where
                            assert source_field in clear, where
    assert checked >= 50


def _read_signals(bootstrap: str) -> list[object]:
    consumer = open_consumer(bootstrap, client_id="leak-guard-signals")
    try:
        partitions: list[TopicPartition] = []
        for signal_type in registry().signal_types():
            partitions += assign_topic(consumer, f"signals.{signal_type}")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return list(drain(consumer, idle_ms=1500, first_wait_ms=5000))
    finally:
        consumer.close()
