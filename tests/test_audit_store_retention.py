"""Retention with an injected clock: only expired data goes, the chain still verifies, and the
run is recorded in the store; topic trimming against the real embedded broker (tansu)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from audit_store_support import BACKENDS, T0, StoreHandle, decision, store_handle
from signalhub.audit.retention import RetentionPlan, run_retention
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.subscriptions import Subscription

pytestmark = pytest.mark.integration

PLAN = RetentionPlan(audit_days=30, signal_days=30, delivery_days=90, signal_topics=())


@pytest.fixture(params=BACKENDS)
def handle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHandle]:
    with store_handle(request.param, tmp_path) as opened:
        opened.store.append([decision(n, subject_refs=(f"ref-{n}",)) for n in range(1, 11)])
        yield opened


def decided(handle: StoreHandle) -> list[int]:
    """The n of every decision still stored (signal ids are UUID(int=n))."""
    rows = handle.sql("SELECT signal_id FROM audit_log WHERE kind = 'decision' ORDER BY seq")
    return [int(row[0].replace("-", ""), 16) for row in rows]


def entry(handle: StoreHandle, seq: int) -> dict[str, object]:
    rows = handle.sql("SELECT kind, body FROM audit_log WHERE seq = ?", (seq,))
    assert rows[0][0] == "retention"
    body: dict[str, object] = json.loads(rows[0][1])
    return body


def test_retention_removes_only_expired_rows_and_records_it(handle: StoreHandle) -> None:
    now = T0 + timedelta(days=30, minutes=5, seconds=30)  # decisions 1..5 are over 30 days old
    report = run_retention(handle.store, PLAN, now=now, bootstrap_servers=None)
    assert report.audit_removed == 5
    assert [(r.first_seq, r.last_seq) for r in report.audit_ranges] == [(1, 5)]
    assert decided(handle) == [6, 7, 8, 9, 10]
    assert handle.sql("SELECT MIN(seq) FROM audit_subject")[0][0] == 6
    body = entry(handle, report.entry_seq)
    store_part = body["audit_store"]
    assert isinstance(store_part, dict)
    assert store_part["removed"] == 5
    assert store_part["cutoff"] == "2024-03-01T09:05:30.000Z"
    assert store_part["first_decided_at"] == "2024-03-01T09:01:00.000Z"
    assert store_part["last_decided_at"] == "2024-03-01T09:05:00.000Z"
    anchor = handle.sql("SELECT prev_hash FROM audit_log WHERE seq = 6")[0][0]
    assert store_part["removed_ranges"] == [{"first_seq": 1, "last_seq": 5, "anchor": anchor}]
    verified = handle.store.verify()
    assert verified.intact, verified.findings
    assert verified.removed_by_retention == 5


def test_repeated_runs_keep_the_chain_verifiable(handle: StoreHandle) -> None:
    first = run_retention(
        handle.store, PLAN, now=T0 + timedelta(days=30, minutes=3), bootstrap_servers=None
    )
    handle.store.append([decision(n) for n in (11, 12)])
    nothing = run_retention(
        handle.store, PLAN, now=T0 + timedelta(days=30, minutes=3), bootstrap_servers=None
    )
    assert nothing.audit_removed == 0
    last = run_retention(handle.store, PLAN, now=T0 + timedelta(days=60), bootstrap_servers=None)
    # Everything has expired by then; retention entries stay, so the removed runs are split.
    assert decided(handle) == []
    assert [(r.first_seq, r.last_seq) for r in last.audit_ranges] == [(3, 10), (12, 13)]
    assert [row[0] for row in handle.sql("SELECT seq FROM audit_log ORDER BY seq")] == [
        first.entry_seq,
        nothing.entry_seq,
        last.entry_seq,
    ]
    report = handle.store.verify()
    assert report.intact, report.findings
    assert report.removed_by_retention == 12


def test_deleting_a_row_outside_retention_is_still_found(handle: StoreHandle) -> None:
    run_retention(
        handle.store, PLAN, now=T0 + timedelta(days=30, minutes=4), bootstrap_servers=None
    )
    handle.sql("DELETE FROM audit_log WHERE seq = 7")
    handle.sql("DELETE FROM audit_subject WHERE seq = 7")
    assert [(f.kind, f.seq) for f in handle.store.verify().findings] == [("deleted", 7)]


def test_a_retention_entry_that_claims_more_is_found(handle: StoreHandle) -> None:
    report = run_retention(
        handle.store, PLAN, now=T0 + timedelta(days=30, minutes=4), bootstrap_servers=None
    )
    # Decisions 1..3 expired; 5 did not, yet someone removes it and widens the declaration.
    handle.sql("DELETE FROM audit_log WHERE seq = 5")
    handle.sql("DELETE FROM audit_subject WHERE seq = 5")
    handle.sql(
        "UPDATE audit_log SET body = replace(body, '\"last_seq\":3', '\"last_seq\":5') "
        "WHERE seq = ?",
        (report.entry_seq,),
    )
    found = [(f.kind, f.seq) for f in handle.store.verify().findings]
    assert ("changed", report.entry_seq) in found  # the edited declaration
    assert ("deleted", 5) in found  # an edited declaration is not trusted
    assert ("deleted", 1) in found


def _produce(bootstrap: str, topic: str, records: list[tuple[int, bytes | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for timestamp_ms, signal_type in records:
            headers = [("signalhub.signal_type", signal_type)] if signal_type else []
            producer.send(topic, value=b"x", timestamp_ms=timestamp_ms, headers=headers)
        producer.flush()
    finally:
        producer.close()


def _count(bootstrap: str, topic: str) -> int:
    consumer = open_consumer(bootstrap)
    try:
        assign_topic(consumer, topic)
        return sum(1 for _ in drain(consumer, idle_ms=500))
    finally:
        consumer.close()


def test_topic_retention_reports_what_the_broker_cannot_delete(handle: StoreHandle) -> None:
    now = T0 + timedelta(days=100)
    days_ago = lambda days: int((now - timedelta(days=days)).timestamp() * 1000)  # noqa: E731
    subscriptions = (
        Subscription(
            id="gemeente-overlast",
            subscriber="gemeente",
            signal_types=("nuisance_report",),
            purpose="public_order",
            legal_basis="Gemeentewet art. 172",
            retention_days=10,
        ),
        Subscription(
            id="gemeente-drugs",
            subscriber="gemeente",
            signal_types=("drug_signal",),
            purpose="damocles_enforcement",
            legal_basis="Opiumwet art. 13b",
        ),
    )
    plan = RetentionPlan(
        audit_days=30,
        signal_days=30,
        delivery_days=90,
        signal_topics=("signals.nuisance_report",),
        subscriptions=subscriptions,
    )
    # A broker of our own: tansu panics a worker on DeleteRecords.
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        broker.create_topics(
            ["signals.nuisance_report", "signals.dlq", "signals.parked", "deliveries.gemeente"]
        )
        _produce(
            bootstrap,
            "signals.nuisance_report",
            [(days_ago(40), None)] * 3 + [(days_ago(5), None)] * 2,
        )
        _produce(
            bootstrap,
            "deliveries.gemeente",
            [
                (days_ago(20), b"nuisance_report"),  # 10-day subscription: expired
                (days_ago(20), b"drug_signal"),  # default 90 days: kept, and holds the rest
                (days_ago(20), b"nuisance_report"),  # expired, but behind a kept record
            ],
        )
        report = run_retention(handle.store, plan, now=now, bootstrap_servers=bootstrap)
        outcomes = {(o.topic, o.partition): o for o in report.topics}
        signals = outcomes[("signals.nuisance_report", 0)]
        assert (signals.records, signals.expired, signals.delete_before) == (5, 3, 3)
        deliveries = outcomes[("deliveries.gemeente", 0)]
        assert (deliveries.records, deliveries.expired, deliveries.delete_before) == (3, 1, 1)
        for outcome in (signals, deliveries):
            assert outcome.status == "unsupported"
            assert "does not implement DeleteRecords" in outcome.detail
        assert outcomes[("signals.dlq", 0)].status == "nothing_expired"
        assert _count(bootstrap, "signals.nuisance_report") == 5  # nothing was removed
    recorded = entry(handle, report.entry_seq)["topics"]
    assert isinstance(recorded, list)
    by_topic = {item["topic"]: item for item in recorded}
    assert by_topic["signals.nuisance_report"]["expired"] == 3
    assert by_topic["signals.nuisance_report"]["status"] == "unsupported"
    assert by_topic["deliveries.gemeente"]["delete_before_offset"] == 1
    assert handle.store.verify().intact
