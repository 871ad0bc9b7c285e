"""Reading deliveries back from the real broker: decoded, JSON-friendly, de-duplicated."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC

import pytest

from delivery_support import (
    fresh_registry,
    nuisance_view,
    produce_deliveries,
    publish_view_schema,
)
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import read_deliveries, to_json_value

pytestmark = pytest.mark.integration


def test_reads_every_delivery_decoded_to_json(
    broker: EmbeddedBroker, name_factory: Callable[[str], str]
) -> None:
    subscriber, views = name_factory("sub"), name_factory("views")
    broker.create_topics([f"deliveries.{subscriber}"], partitions=3)
    registry = fresh_registry()
    view = nuisance_view(registry)
    publish_view_schema(broker.bootstrap_servers, views, view)
    ids = produce_deliveries(broker.bootstrap_servers, subscriber, registry, view, 7)

    with ViewSchemaCatalog(broker.bootstrap_servers, fresh_registry(), topic=views) as catalog:
        got = list(read_deliveries(broker.bootstrap_servers, subscriber, catalog, idle_ms=500))

    assert sorted(d.delivery_id for d in got) == sorted(ids)
    first = got[0]
    assert first.topic == f"deliveries.{subscriber}"
    assert first.signal_type == "nuisance_report"
    assert first.policy_version == "sha256:test"
    assert first.record["envelope"]["observed_at"].startswith("2025-03-01T12:00:")
    assert first.pseudonymised_fields() == ["subject_bsn"]
    json.dumps([d.to_json() for d in got])  # JSON-friendly throughout
    assert len({(d.partition, d.offset) for d in got}) == 7


def test_dedupe_skips_a_repeated_delivery_id(
    broker: EmbeddedBroker, name_factory: Callable[[str], str]
) -> None:
    subscriber, views = name_factory("sub"), name_factory("views")
    broker.create_topics([f"deliveries.{subscriber}"])
    registry = fresh_registry()
    view = nuisance_view(registry)
    publish_view_schema(broker.bootstrap_servers, views, view)
    ids = produce_deliveries(broker.bootstrap_servers, subscriber, registry, view, 3)
    with ViewSchemaCatalog(broker.bootstrap_servers, fresh_registry(), topic=views) as catalog:
        from signalhub.broker.reader import assign_topic, drain, open_consumer

        consumer = open_consumer(broker.bootstrap_servers)
        assign_topic(consumer, f"deliveries.{subscriber}")
        raw = list(drain(consumer, idle_ms=500))
        consumer.close()
        _replay(broker.bootstrap_servers, raw)  # an at-least-once redelivery of all three
        plain = list(read_deliveries(broker.bootstrap_servers, subscriber, catalog, idle_ms=500))
        unique = list(
            read_deliveries(broker.bootstrap_servers, subscriber, catalog, idle_ms=500, dedupe=True)
        )
    assert len(plain) == 6
    assert [d.delivery_id for d in unique] == ids


def test_missing_topic_reads_nothing(
    broker: EmbeddedBroker, name_factory: Callable[[str], str]
) -> None:
    with ViewSchemaCatalog(
        broker.bootstrap_servers, fresh_registry(), topic=name_factory("views")
    ) as catalog:
        assert list(read_deliveries(broker.bootstrap_servers, name_factory("x"), catalog)) == []


def test_to_json_value_converts_avro_logical_types() -> None:
    from datetime import date, datetime

    value = {"a": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "b": [date(2020, 2, 29)]}
    assert to_json_value(value) == {"a": "2025-01-02T03:04:05+00:00", "b": ["2020-02-29"]}


def _replay(bootstrap: str, messages: list[object]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for m in messages:
        producer.send(m.topic, key=m.key, value=m.value, headers=m.headers)  # type: ignore[attr-defined]
    producer.flush(10)
    producer.close()
