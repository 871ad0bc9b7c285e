"""Publishing to the real embedded broker: keys, topics and values as the enforcer reads them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connector_support import definitions, registry, sample_path
from signalhub.connector import ConnectorRunner, JsonLinesSource, KafkaPublisher, RejectList
from signalhub.errors import BrokerError
from signalhub.schema import codec

pytestmark = pytest.mark.integration


def _consume(bootstrap_servers: str, topics: list[str], wanted: set[bytes]) -> list[Any]:
    """Records of ``topics`` from the start, until every ``wanted`` key was seen (or 10 s quiet).

    The signal topics are shared by the session, so this waits for keys, not for a count.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        consumer_timeout_ms=10_000,
    )
    try:
        consumer.assign(
            [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or {0})
            ]
        )
        consumer.seek_to_beginning()
        seen: list[Any] = []
        missing = set(wanted)
        for message in consumer:
            seen.append(message)
            missing.discard(message.key)
            if not missing:
                break
        return seen
    finally:
        consumer.close()


def test_publisher_delivers_keyed_records(broker: Any, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory("connector-publisher")
    publisher = KafkaPublisher(broker.bootstrap_servers)
    try:
        for number in range(5):
            publisher.publish(topic, f"key-{number}".encode(), f"value-{number}".encode())
        publisher.flush()
    finally:
        publisher.close()
    keys = {f"key-{n}".encode() for n in range(5)}
    received = _consume(broker.bootstrap_servers, [topic], keys)
    assert [(m.key, m.value) for m in received] == [
        (f"key-{n}".encode(), f"value-{n}".encode()) for n in range(5)
    ]


def test_runner_publishes_the_gemeente_sample_to_the_signal_topics(broker: Any) -> None:
    reg = registry()
    definition = definitions()["gemeente"]
    topics = [reg.signal(t).topic for t in definition.signal_types()]
    broker.create_topics(topics)
    publisher = KafkaPublisher(broker.bootstrap_servers)
    try:
        runner = ConnectorRunner(
            definition, reg, publisher, rejects=RejectList(), max_record_bytes=64 * 1024
        )
        report = runner.run(JsonLinesSource(sample_path("gemeente.jsonl")))
    finally:
        publisher.close()
    assert report.published > 0
    found: dict[str, dict[str, Any]] = {}
    assert sum(report.published_by_topic.values()) == report.published
    wanted = {signal_id.encode() for signal_id in report.signal_ids}
    for message in _consume(broker.bootstrap_servers, topics, wanted):
        _, record = codec.decode(reg, message.value)
        assert message.topic == f"signals.{record['envelope']['signal_type']}"
        assert message.key.decode() == record["envelope"]["signal_id"]
        found[message.key.decode()] = record
    assert set(report.signal_ids) <= set(found)
    assert {found[i]["envelope"]["source_agency"] for i in report.signal_ids} == {"gemeente"}


def test_an_unreachable_kafka_is_a_broker_error() -> None:
    with pytest.raises(BrokerError, match="cannot connect to Kafka"):
        KafkaPublisher("127.0.0.1:1", bootstrap_timeout_ms=1000)
