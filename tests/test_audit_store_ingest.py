"""Ingesting the audit topic (real embedded broker) into real SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from audit_store_support import BACKENDS, StoreHandle, decision, store_handle
from signalhub.audit.backends import SqliteAuditStore
from signalhub.audit.ingest import AuditIngestor, audit_registry
from signalhub.audit.record import audit_entry, load_audit_schema
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.config import load_settings
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import Record

pytestmark = pytest.mark.integration


@pytest.fixture(params=BACKENDS)
def handle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHandle]:
    with store_handle(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def registry() -> SchemaRegistry:
    return audit_registry(load_settings())


def publish(bootstrap: str, topic: str, registry: SchemaRegistry, records: list[Record]) -> None:
    """Each decision as the audit entry of its own signal, then one record that is no entry."""
    schema = load_audit_schema(load_settings().schemas_dir)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for record in records:
            value = codec.encode(registry, schema, audit_entry(record["signal_id"], [record]))
            producer.send(topic, key=record["signal_id"].encode(), value=value)
        producer.send(topic, key=b"x", value=b"\x00 not an audit record")
        producer.flush()
    finally:
        producer.close()


def snapshot(handle: StoreHandle) -> list[tuple[object, ...]]:
    rows = handle.sql("SELECT seq, entry_id, body, prev_hash, row_hash FROM audit_log ORDER BY seq")
    return [tuple(row) for row in rows]


def test_replaying_the_whole_topic_twice_leaves_the_store_unchanged(
    handle: StoreHandle,
    broker: EmbeddedBroker,
    topic_factory: Callable[..., str],
    name_factory: Callable[[str], str],
    registry: SchemaRegistry,
) -> None:
    topic = topic_factory("audit")
    records = [decision(n, subject_refs=(f"ref-{n}",)) for n in range(1, 41)]
    # At-least-once upstream: the enforcer re-sent some decisions after a restart.
    publish(broker.bootstrap_servers, topic, registry, records + records[5:15])
    group = name_factory("audit-ingest")

    def ingestor(group_id: str) -> AuditIngestor:
        return AuditIngestor(
            handle.store,
            registry,
            broker.bootstrap_servers,
            group=group_id,
            topic=topic,
            idle_ms=500,
        )

    first = ingestor(group).run()
    assert (first.read, first.inserted, first.duplicates) == (51, 40, 10)
    assert first.undecodable == [f"{topic}[0]@50"]
    before = snapshot(handle)
    assert len(before) == 40

    for _ in range(2):
        replay = ingestor(name_factory("audit-replay")).run()
        assert (replay.read, replay.inserted, replay.duplicates) == (51, 0, 50)
        assert snapshot(handle) == before
    again = ingestor(group).run(replay=True)
    assert again.inserted == 0
    assert snapshot(handle) == before
    assert handle.store.verify().intact


def test_ingest_resumes_after_its_committed_offset(
    handle: StoreHandle,
    broker: EmbeddedBroker,
    topic_factory: Callable[..., str],
    name_factory: Callable[[str], str],
    registry: SchemaRegistry,
) -> None:
    topic = topic_factory("audit")
    group = name_factory("audit-ingest")
    publish(broker.bootstrap_servers, topic, registry, [decision(n) for n in range(1, 6)])
    ingestor = AuditIngestor(
        handle.store, registry, broker.bootstrap_servers, group=group, topic=topic, idle_ms=500
    )
    assert ingestor.run().read == 6
    publish(broker.bootstrap_servers, topic, registry, [decision(n) for n in range(6, 9)])
    resumed = ingestor.run()
    assert (resumed.read, resumed.inserted) == (4, 3)  # only what came after the commit
    assert handle.store.count() == 8
    assert [row[1] for row in snapshot(handle)] == [decision(n)["decision_id"] for n in range(1, 9)]


def test_an_entry_holds_every_decision_of_its_signal_and_old_single_records_still_ingest(
    handle: StoreHandle,
    broker: EmbeddedBroker,
    topic_factory: Callable[..., str],
    name_factory: Callable[[str], str],
    registry: SchemaRegistry,
) -> None:
    topic = topic_factory("audit")
    settings = load_settings()
    entry_schema = load_audit_schema(settings.schemas_dir)
    # One record per decision: what the enforcer wrote before audit entries existed.
    single_schema = json.loads((settings.schemas_dir / "hub" / "audit_record.avsc").read_text())
    three = [decision(n) for n in (1, 2, 3)]
    old = decision(4)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    try:
        entry = audit_entry("signal-of-three", three)
        producer.send(topic, value=codec.encode(registry, entry_schema, entry))
        producer.send(topic, value=codec.encode(registry, single_schema, old))
        producer.flush()
    finally:
        producer.close()
    report = AuditIngestor(
        handle.store, registry, broker.bootstrap_servers, group=name_factory("g"), topic=topic
    ).run()
    assert (report.read, report.decisions, report.inserted, report.undecodable) == (2, 4, 4, [])
    stored = [row[1] for row in snapshot(handle)]
    assert stored == [d["decision_id"] for d in [*three, old]]


def test_a_steady_trickle_is_stored_while_it_lasts_not_only_when_it_stops(
    tmp_path: Path,
    broker: EmbeddedBroker,
    topic_factory: Callable[..., str],
    name_factory: Callable[[str], str],
    registry: SchemaRegistry,
) -> None:
    """One record every 100 ms never leaves the topic idle for the ingester's idle time."""
    topic = topic_factory("audit")
    group = name_factory("g")
    stop = threading.Event()
    producing = threading.Event()
    producing.set()
    seen: list[tuple[int, bool]] = []  # (records read so far, still producing)

    def follow() -> None:
        with SqliteAuditStore(tmp_path / "audit.sqlite") as store:  # opened where it is used
            AuditIngestor(store, registry, broker.bootstrap_servers, group=group, topic=topic).run(
                follow=True,
                stop=stop,
                on_batch=lambda report: seen.append((report.read, producing.is_set())),
            )

    follower = threading.Thread(target=follow)
    follower.start()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    schema = load_audit_schema(load_settings().schemas_dir)
    try:
        for n in range(1, 31):
            record = decision(n)
            entry = audit_entry(record["signal_id"], [record])
            producer.send(topic, value=codec.encode(registry, schema, entry)).get(timeout=10)
            time.sleep(0.1)
        producing.clear()
        deadline = time.monotonic() + 10
        while (not seen or seen[-1][0] < 30) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        producer.close()
        stop.set()
        follower.join(timeout=30)
    assert [read for read, live in seen if live], f"nothing stored while records came: {seen}"
    assert seen[-1][0] == 30
