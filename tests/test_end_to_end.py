"""Issue 2's acceptance on the real embedded broker: connectors → enforcer → subscribers → audit.

One hub (topics plus one enforcer worker process) serves the whole module. Each test publishes
its own agency records through the real connectors and looks only at its own signal ids. What a
subscriber should receive is computed independently with the real policy engine and compared
with what arrived on its topic.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from pydantic import SecretStr

from delivery_support import serve
from hub_support import (
    SCHULD_TABLE,
    Delivery,
    Hub,
    Person,
    RecordingPublisher,
    gemeente_case,
    new_person,
    politie_row,
    read_topics,
    reason_of,
    running_hub,
    schuld_row,
    write_csv,
    write_jsonl,
)
from signalhub.apps.demo import Accounting
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.connector import Mapper, RejectList, create_ingest_app
from signalhub.connector.runner import RunReport
from signalhub.schema import codec
from signalhub.wire import DLQ_TOPIC

pytestmark = pytest.mark.integration

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
OVERSIZED_TEXT = "x" * (70 * 1024)


@pytest.fixture(scope="module")
def hub(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    state = tmp_path_factory.mktemp("e2e-hub")
    with running_hub(broker.bootstrap_servers, state, f"e2e-{uuid.uuid4().hex[:8]}") as running:
        yield running


# -- helpers --------------------------------------------------------------------------------


def _check_every_decision(hub: Hub, signal_ids: list[str]) -> dict[str, list[Delivery]]:
    """Audit and deliveries of each signal match the policy's decision for each subscription.

    Allowed: an allow audit record and a delivery with exactly the permitted fields, carrying
    the audit's delivery_id. Denied: a deny audit record with a reason, and no delivery.
    Returns the deliveries per signal id.
    """
    accounting = hub.wait_accounted(signal_ids)
    rows = hub.audit_rows(accounting, signal_ids)
    allowed = {r["delivery_id"] for rs in rows.values() for r in rs if r["outcome"] == "allow"}
    deliveries = hub.wait_deliveries(allowed, signal_ids)
    received: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        received[(delivery.signal_id, delivery.subscriber)].append(delivery)
    per_signal: dict[str, list[Delivery]] = defaultdict(list)
    for signal_id in signal_ids:
        expected = hub.expected_decisions(hub.signals[signal_id])
        audited = {row["subscription_id"]: row for row in rows[signal_id]}
        assert set(audited) == set(expected), signal_id
        for subscription_id, (subscription, decision) in expected.items():
            row = audited[subscription_id]
            got = received.get((signal_id, subscription.subscriber), [])
            if decision.allow:
                assert row["outcome"] == "allow", (subscription_id, row["reasons"])
                assert got, f"{subscription_id} was allowed but received nothing"
                for delivery in got:
                    hub.assert_delivery_is_exactly_permitted(delivery, decision)
                    assert delivery.decoded.delivery_id == row["delivery_id"]
                # The audit names every disclosed field: clear, pseudonymised or generalised.
                audited_fields = set(row["fields_clear"]) | set(row["fields_pseudonymised"])
                generalised = set(got[0].payload) - audited_fields
                assert generalised <= set(decision.generalise), subscription_id
                assert {entry.split("=")[0] for entry in row["fields_generalised"]} == generalised
                assert row["fields_withheld"] == got[0].delivery["withheld"]
                per_signal[signal_id] += got
            else:
                assert row["outcome"] == "deny", subscription_id
                assert row["reasons"]
                assert row["reasons"] == list(decision.reasons)
                assert row["delivery_id"] is None
                assert got == [], f"{subscription_id} was denied but received a delivery"
    return per_signal


def _published(report: RunReport, count: int) -> list[str]:
    assert report.read == report.published + report.rejected
    assert (report.published, report.rejected) == (count, 0)
    return report.signal_ids


@contextlib.contextmanager
def _postgres_schema() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        connection = psycopg.connect(POSTGRES_URL, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (db test, user postgres) unreachable: {exc}")
    schema = f"signalhub_{uuid.uuid4().hex[:10]}"
    with connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        try:
            yield schema
        finally:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


# -- each source kind -------------------------------------------------------------------------


def _csv_source(hub: Hub, tmp_path: Path, people: list[Person]) -> RunReport:
    rows = [
        politie_row(people[0], "F354", ernst="4"),
        politie_row(people[1], "D300", ernst="5", middel="hennep"),
    ]
    report, _ = hub.run_connector("politie", str(write_csv(tmp_path / "politie.csv", rows)))
    return report


def _jsonl_source(hub: Hub, tmp_path: Path, people: list[Person]) -> RunReport:
    cases = [
        gemeente_case(people[0], "OVERLAST"),
        gemeente_case(people[1], "RADICALISERING", zorgniveau="hoog", indicatoren=["IND-UITREIS"]),
    ]
    report, _ = hub.run_connector("gemeente", str(write_jsonl(tmp_path / "gemeente.jsonl", cases)))
    return report


def _http_source(hub: Hub, tmp_path: Path, people: list[Person]) -> RunReport:
    publisher = RecordingPublisher(hub.bootstrap)
    rejects = RejectList()
    app = create_ingest_app(
        {"gemeente": hub.runner("gemeente", publisher, rejects)},
        {"gemeente": SecretStr("ingest-token-gemeente")},
    )
    cases = [
        gemeente_case(people[0], "OVERLAST", ernst=5),
        gemeente_case(people[1], "DAMOCLES", ingangsdatum="2025-03-10", duur_maanden=6),
    ]
    try:
        with serve(app) as url:
            response = httpx.post(
                f"{url}/ingest/gemeente",
                json=cases,
                headers={"Authorization": "Bearer ingest-token-gemeente"},
                timeout=30,
            )
    finally:
        publisher.close()
    assert response.status_code == 200, response.text
    hub.remember(publisher.sent)
    published = response.json()["published"]
    report = RunReport("gemeente", "http", read=len(cases), published=len(published))
    report.signal_ids = [item["signal_id"] for item in published]
    return report


def _schuld_rows(people: list[Person]) -> list[dict[str, Any]]:
    referral = schuld_row(people[1], 20, "DOORVERWIJZING")
    referral |= {"verwijzer": "Olivia Elbertse", "maanden_achterstand": None}
    return [schuld_row(people[0], 10, "HUUR"), referral]


def _sqlite_source(hub: Hub, tmp_path: Path, people: list[Person]) -> RunReport:
    path = tmp_path / "register.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(SCHULD_TABLE.format(table="schuldsignalen"))
        for row in _schuld_rows(people):
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            connection.execute(
                f"INSERT INTO schuldsignalen ({columns}) VALUES ({marks})",
                tuple(row.values()),
            )
    report, _ = hub.run_connector("schuldhulpverlening", f"sqlite:///{path}")
    return report


def _postgres_source(hub: Hub, tmp_path: Path, people: list[Person]) -> RunReport:
    import psycopg

    with _postgres_schema() as schema:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(SCHULD_TABLE.format(table=f"{schema}.schuldsignalen"))
            for row in _schuld_rows(people):
                columns = ", ".join(row)
                marks = ", ".join("%s" for _ in row)
                connection.execute(
                    f"INSERT INTO {schema}.schuldsignalen ({columns}) VALUES ({marks})",
                    tuple(row.values()),
                )
        # The shipped definition polls the unqualified table; the search path picks our schema.
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        report, _ = hub.run_connector("schuldhulpverlening", url)
    return report


SOURCES = {
    "csv-politie": _csv_source,
    "jsonl-gemeente": _jsonl_source,
    "http-gemeente": _http_source,
    "sqlite-schuldhulpverlening": _sqlite_source,
    "postgresql-schuldhulpverlening": _postgres_source,
}


@pytest.mark.parametrize("kind", list(SOURCES))
def test_each_source_kind_delivers_exactly_the_permitted_fields(
    hub: Hub, tmp_path: Path, kind: str
) -> None:
    people = [new_person(), new_person()]
    report = SOURCES[kind](hub, tmp_path, people)
    signal_ids = _published(report, 2)

    delivered = _check_every_decision(hub, signal_ids)

    # Each signal reached at least one subscriber: the comparison above was not vacuous.
    assert all(delivered[signal_id] for signal_id in signal_ids), kind


def test_a_subscriber_without_an_agreement_receives_nothing(hub: Hub, tmp_path: Path) -> None:
    rows = [politie_row(new_person(), "F350", ernst="5") for _ in range(3)]
    report, _ = hub.run_connector("politie", str(write_csv(tmp_path / "politie.csv", rows)))
    signal_ids = _published(report, 3)

    delivered = _check_every_decision(hub, signal_ids)

    rows_by_signal = hub.audit_rows(hub.wait_accounted(signal_ids), signal_ids)
    for signal_id in signal_ids:
        jeugdzorg = [r for r in rows_by_signal[signal_id] if r["subscriber"] == "jeugdzorg"]
        assert [r["outcome"] for r in jeugdzorg] == ["deny"]
        assert jeugdzorg[0]["subscription_id"] == "jeugdzorg-overlast"
        assert any("no agreement" in reason for reason in jeugdzorg[0]["reasons"])
        assert jeugdzorg[0]["fields_clear"] == jeugdzorg[0]["fields_pseudonymised"] == []
        receivers = {d.subscriber for d in delivered[signal_id]}
        assert "jeugdzorg" not in receivers
        assert {"gemeente", "politie", "woningcorporatie"} <= receivers
    on_its_topic = [d for d in hub.deliveries(signal_ids) if d.subscriber == "jeugdzorg"]
    assert on_its_topic == []


# -- rejects and dead letters ------------------------------------------------------------------


def test_bad_agency_records_are_rejected_with_a_reason_and_the_rest_delivered(
    hub: Hub, tmp_path: Path
) -> None:
    good = [politie_row(new_person(), "F354") for _ in range(3)]
    bad = {
        "wrong type": politie_row(new_person(), "F354", ernst="heel erg"),
        "unknown type": politie_row(new_person(), "X999"),
        "oversized": politie_row(new_person(), "F354", omschrijving=OVERSIZED_TEXT),
    }
    rows = [good[0], bad["wrong type"], good[1], bad["unknown type"], bad["oversized"], good[2]]
    csv_path = write_csv(tmp_path / "politie.csv", rows, extra_lines=["PL-T-1;F350;too;few"])
    report, rejects = hub.run_connector("politie", str(csv_path))

    cases: list[dict[str, Any] | str] = [
        gemeente_case(new_person()),
        '{"zaaknummer": "Z-T-1", "zaaktype": ',
        gemeente_case(new_person()),
    ]
    json_report, json_rejects = hub.run_connector(
        "gemeente", str(write_jsonl(tmp_path / "gemeente.jsonl", cases))
    )

    assert (report.read, report.published, report.rejected) == (7, 3, 4)
    # Lines: 1 header, 2 good, 3 wrong type, 4 good, 5 unknown code, 6 oversized, 7 good, 8 bad.
    by_ref = {r.ref: r for r in rejects.rejects}
    assert set(by_ref) == {"politie.csv:3", "politie.csv:5", "politie.csv:6", "politie.csv:8"}
    assert by_ref["politie.csv:3"].code == "invalid"
    assert "ernst" in by_ref["politie.csv:3"].reason
    assert by_ref["politie.csv:3"].record == bad["wrong type"]
    assert by_ref["politie.csv:5"].code == "invalid"
    assert "no signal type" in by_ref["politie.csv:5"].reason
    assert by_ref["politie.csv:6"].code == "oversized"
    assert by_ref["politie.csv:8"].code == "undecodable"
    assert "malformed CSV" in by_ref["politie.csv:8"].reason
    assert (json_report.read, json_report.published, json_report.rejected) == (3, 2, 1)
    (json_reject,) = json_rejects.rejects
    assert (json_reject.ref, json_reject.code) == ("gemeente.jsonl:2", "undecodable")
    assert "malformed JSON" in json_reject.reason

    signal_ids = report.signal_ids + json_report.signal_ids
    delivered = _check_every_decision(hub, signal_ids)
    assert all(delivered[signal_id] for signal_id in signal_ids)


def _valid_signal(hub: Hub, code: str = "F354", **columns: str) -> tuple[str, bytes]:
    """A politie signal encoded exactly as the connector would (signal id, bytes)."""
    schema, record = Mapper(hub.definitions["politie"], hub.registry).map(
        politie_row(new_person(), code, **columns), "generated"
    )
    return record["envelope"]["signal_id"], codec.encode(hub.registry, schema.avro, record)


def test_foreign_bytes_on_a_signal_topic_go_to_the_dlq_unchanged(hub: Hub) -> None:
    topic = hub.registry.signal("nuisance_report").topic
    _, drug_bytes = _valid_signal(hub, "D300")
    schema, alien = Mapper(hub.definitions["politie"], hub.registry).map(
        politie_row(new_person()), "generated"
    )
    alien["envelope"]["signal_type"] = "alien_report"
    _, oversized = _valid_signal(hub, omschrijving=OVERSIZED_TEXT)
    tag = uuid.uuid4().hex[:8]
    foreign: dict[bytes, tuple[bytes | None, str]] = {
        f"random-{tag}".encode(): (os.urandom(200), "undecodable"),
        f"wrong-topic-{tag}".encode(): (drug_bytes, "wrong_topic"),
        f"oversized-{tag}".encode(): (oversized, "oversized"),
        f"unknown-type-{tag}".encode(): (
            codec.encode(hub.registry, schema.avro, alien),
            "unknown_signal_type",
        ),
        f"unknown-schema-{tag}".encode(): (b"\xc3\x01" + os.urandom(8) + b"\x02", "unknown_schema"),
        f"tombstone-{tag}".encode(): (None, "empty"),
    }
    before = [_valid_signal(hub) for _ in range(2)]
    after = [_valid_signal(hub) for _ in range(2)]
    assert len(oversized) > hub.settings.max_record_bytes
    producer = KafkaProducer(bootstrap_servers=hub.bootstrap)
    try:
        for signal_id, value in before:
            producer.send(topic, key=signal_id.encode(), value=value)
        for key, (raw, _) in foreign.items():
            producer.send(topic, key=key, value=raw)
        for signal_id, value in after:
            producer.send(topic, key=signal_id.encode(), value=value)
        producer.flush(10)
    finally:
        producer.close()
    sent = before + after
    for signal_id, value in sent:
        _, record = codec.decode(hub.registry, value)
        hub.signals[signal_id] = record

    hub.wait_accounted([signal_id for signal_id, _ in sent] + [k.decode() for k in foreign])
    dead = hub.dead_letters(foreign)

    assert set(dead) == set(foreign)
    for key, (raw, reason) in foreign.items():
        message = dead[key]
        assert reason_of(message) == reason, key
        assert bytes(message.value) == (raw or b""), f"{key!r}: original bytes changed"
        headers = dict(message.headers)
        assert headers["signalhub.source.topic"] == topic.encode()
        assert headers["signalhub.detail"]
    valid_ids = [signal_id for signal_id, _ in sent]
    delivered = _check_every_decision(hub, valid_ids)
    assert all(delivered[signal_id] for signal_id in valid_ids)


# -- no clear identifiers, every record accounted for ---------------------------------------


def test_no_identifier_from_the_input_appears_in_clear_unless_the_decision_allows_it(
    hub: Hub, tmp_path: Path
) -> None:
    people = [new_person() for _ in range(6)]
    rows = [
        politie_row(people[0], "F354", ernst="5"),
        # The police receive a drug signal's free text in clear: a BSN typed into it must not.
        politie_row(
            people[1],
            "D300",
            ernst="5",
            middel="hennep",
            omschrijving=f"Kwekerij aangetroffen, bewoner BSN {people[1].bsn} aangehouden.",
        ),
        politie_row(people[2], "I200", ernst="4"),
    ]
    cases = [
        gemeente_case(people[3], "OVERLAST"),
        gemeente_case(people[4], "DAMOCLES", ingangsdatum="2025-03-10", duur_maanden=6),
        gemeente_case(people[5], "ZVH_VERWIJZING", reden="veiligheidsrisico", urgentie="spoed"),
    ]
    report, _ = hub.run_connector("politie", str(write_csv(tmp_path / "politie.csv", rows)))
    json_report, _ = hub.run_connector("gemeente", str(write_jsonl(tmp_path / "g.jsonl", cases)))
    signal_ids = _published(report, 3) + _published(json_report, 3)
    delivered = _check_every_decision(hub, signal_ids)

    everything = hub.deliveries()
    all_bsns = {
        str(signal["payload"][spec.name])
        for signal in hub.signals.values()
        for spec in hub.registry.signal(signal["envelope"]["signal_type"]).payload_fields
        if spec.pii == "bsn" and signal["payload"].get(spec.name)
    }
    assert {person.bsn for person in people} <= all_bsns
    for delivery in everything:
        for bsn in all_bsns:
            assert bsn.encode() not in delivery.value, "a BSN reached a subscriber in clear"

    for signal_id in signal_ids:
        signal = hub.signals[signal_id]
        schema = hub.registry.signal(signal["envelope"]["signal_type"])
        decisions = {s.subscriber: d for s, d in hub.expected_decisions(signal).values()}
        for delivery in delivered[signal_id]:
            decision = decisions[delivery.subscriber]
            clear = set(decision.fields) - set(decision.pseudonymise) - set(decision.generalise)
            for spec in schema.payload_fields:
                value = signal["payload"].get(spec.name)
                if spec.pii and isinstance(value, str) and spec.name not in clear:
                    assert value.encode() not in delivery.value, (delivery.subscriber, spec.name)
    # The names the shipped policy does allow (politie, nuisance) really arrive in clear.
    nuisance_to_police = [d for d in delivered[report.signal_ids[0]] if d.subscriber == "politie"]
    assert nuisance_to_police[0].payload["subject_name"] == people[0].name
    (drug_to_police,) = [d for d in delivered[report.signal_ids[1]] if d.subscriber == "politie"]
    description = drug_to_police.payload["description"]
    assert description.startswith("Kwekerij aangetroffen")
    assert people[1].bsn not in description


def test_the_audit_trail_holds_no_clear_identifier(hub: Hub, tmp_path: Path) -> None:
    people = [new_person() for _ in range(3)]
    rows = [politie_row(person, "F354", ernst="5") for person in people]
    report, _ = hub.run_connector("politie", str(write_csv(tmp_path / "politie.csv", rows)))
    signal_ids = _published(report, 3)
    hub.wait_accounted(signal_ids)

    audit_bytes = [bytes(m.value) for m in read_topics(hub.bootstrap, ["audit"])]
    assert audit_bytes
    for person in people:
        for identifier in person.identifiers():
            assert not any(identifier.encode() in value for value in audit_bytes)


def test_every_input_record_is_accounted_for(hub: Hub, tmp_path: Path) -> None:
    rows = [politie_row(new_person(), code) for code in ("F350", "F351", "D500", "I110", "F359")]
    rows.append(politie_row(new_person(), "F350", ernst="vijf"))
    cases: list[Any] = [gemeente_case(new_person()) for _ in range(4)]
    cases.insert(2, "not json at all")
    sqlite_path = tmp_path / "register.sqlite"
    with contextlib.closing(sqlite3.connect(sqlite_path)) as connection, connection:
        connection.execute(SCHULD_TABLE.format(table="schuldsignalen"))
        for number in range(1, 6):
            row = schuld_row(new_person(), number, "ENERGIE" if number % 2 else "ONBEKEND")
            connection.execute(
                f"INSERT INTO schuldsignalen VALUES ({', '.join('?' for _ in row)})",
                tuple(row.values()),
            )
    reports = [
        hub.run_connector("politie", str(write_csv(tmp_path / "p.csv", rows)))[0],
        hub.run_connector("gemeente", str(write_jsonl(tmp_path / "g.jsonl", cases)))[0],
        hub.run_connector("schuldhulpverlening", f"sqlite:///{sqlite_path}")[0],
    ]

    for run in reports:
        assert run.read == run.published + run.rejected, run
    assert [(r.read, r.published, r.rejected) for r in reports] == [(6, 5, 1), (5, 4, 1), (5, 3, 2)]
    signal_ids = [signal_id for run in reports for signal_id in run.signal_ids]
    assert len(set(signal_ids)) == len(signal_ids) == 12

    accounting: Accounting = hub.wait_accounted(signal_ids)
    rows_by_signal = hub.audit_rows(accounting, signal_ids)
    dead_keys = {d["key"] for d in accounting.dead_letters}
    for signal_id in signal_ids:
        expected = set(hub.expected_decisions(hub.signals[signal_id]))
        audited = {row["subscription_id"] for row in rows_by_signal[signal_id]}
        assert audited == expected, signal_id
        assert signal_id not in dead_keys, "a valid signal was dead-lettered"
    allow_rows = [r for rs in rows_by_signal.values() for r in rs if r["outcome"] == "allow"]
    deliveries = hub.wait_deliveries({r["delivery_id"] for r in allow_rows}, signal_ids)
    assert deliveries
    audited_deliveries = {(r["delivery_id"], r["subscriber"], r["signal_id"]) for r in allow_rows}
    for delivery in deliveries:
        key = (delivery.decoded.delivery_id, delivery.subscriber, delivery.signal_id)
        assert key in audited_deliveries, "a delivery without an allow audit record"
    assert {d.decoded.delivery_id for d in deliveries} == {r["delivery_id"] for r in allow_rows}
    decided_at = [datetime.fromisoformat(r["decided_at"]) for r in allow_rows]
    assert all(moment <= datetime.now(UTC) for moment in decided_at)


def test_dead_letters_name_their_reason_and_source(hub: Hub) -> None:
    key = f"garbage-{uuid.uuid4().hex[:8]}".encode()
    topic = hub.registry.signal("debt_signal").topic
    producer = KafkaProducer(bootstrap_servers=hub.bootstrap)
    try:
        producer.send(topic, key=key, value=b"\xc3\x01garbage").get(10)
    finally:
        producer.close()
    accounting = hub.wait_accounted([key.decode()])
    (letter,) = [d for d in accounting.dead_letters if d["key"] == key.decode()]
    assert letter["reason"] in {"undecodable", "unknown_schema"}
    assert letter["source"].startswith(f"{topic}[")
    assert letter["detail"]
    assert hub.dead_letters([key])[key].topic == DLQ_TOPIC
