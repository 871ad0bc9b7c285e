"""The view-schema catalogue on the real broker: load, and refresh on an unknown fingerprint."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from delivery_support import (
    fresh_registry,
    nuisance_view,
    publish_view_schema,
    view_record,
)
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.errors import UnknownSchemaError
from signalhub.schema import codec

pytestmark = pytest.mark.integration


def test_catalog_loads_published_view_schemas(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("views")
    enforcer_registry = fresh_registry()
    view = nuisance_view(enforcer_registry)
    publish_view_schema(broker.bootstrap_servers, topic, view)
    data = codec.encode(enforcer_registry, view, view_record("woningcorporatie", 1))

    reader_registry = fresh_registry()  # knows the signal schemas, not the view
    with pytest.raises(UnknownSchemaError):
        codec.decode(reader_registry, data)
    with ViewSchemaCatalog(broker.bootstrap_servers, reader_registry, topic=topic) as catalog:
        assert catalog.refresh() == 1
        _, record = codec.decode(reader_registry, data)
    assert record["payload"]["subject_bsn"].startswith("pn1.")
    assert record["delivery"]["subscriber"] == "woningcorporatie"


def test_decode_refreshes_once_on_unknown_fingerprint(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("views")
    enforcer_registry = fresh_registry()
    with ViewSchemaCatalog(broker.bootstrap_servers, fresh_registry(), topic=topic) as catalog:
        assert catalog.refresh() == 0  # nothing published yet
        view = nuisance_view(enforcer_registry)
        publish_view_schema(broker.bootstrap_servers, topic, view)  # after the first read
        data = codec.encode(enforcer_registry, view, view_record("gemeente", 2))
        _, record = catalog.decode(data)
        assert record["envelope"]["source_ref"] == "ref-2"
        assert catalog.loaded == 1


def test_decode_waits_for_a_schema_that_becomes_readable_after_the_delivery(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    """The schema and the delivery are produced together, but the delivery's topic may be
    readable first: one re-read right away once called a sound delivery unknown."""
    topic = topic_factory("views")
    enforcer_registry = fresh_registry()
    view = nuisance_view(enforcer_registry)
    data = codec.encode(enforcer_registry, view, view_record("gemeente", 4))
    late = threading.Timer(1.0, publish_view_schema, (broker.bootstrap_servers, topic, view))
    with ViewSchemaCatalog(broker.bootstrap_servers, fresh_registry(), topic=topic) as catalog:
        late.start()
        try:
            _, record = catalog.decode(data)
        finally:
            late.join()
    assert record["envelope"]["source_ref"] == "ref-4"


def test_decode_still_unknown_after_the_wait_raises(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("views")
    enforcer_registry = fresh_registry()
    view = enforcer_registry.view_schema("nuisance_report", ["severity"], [])
    data = codec.encode(enforcer_registry, view, _minimal(view_record("om", 3)))
    with (
        ViewSchemaCatalog(
            broker.bootstrap_servers, fresh_registry(), topic=topic, schema_wait_s=0.5
        ) as catalog,
        pytest.raises(UnknownSchemaError),
    ):
        catalog.decode(data)


def test_catalog_skips_a_malformed_entry(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    from kafka import KafkaProducer

    topic = topic_factory("views")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    producer.send(topic, key=b"00", value=b"{not json").get(10)
    producer.close()
    enforcer_registry = fresh_registry()
    view = nuisance_view(enforcer_registry)
    publish_view_schema(broker.bootstrap_servers, topic, view)
    with ViewSchemaCatalog(broker.bootstrap_servers, fresh_registry(), topic=topic) as catalog:
        assert catalog.refresh() == 1


def _minimal(record: dict[str, object]) -> dict[str, object]:
    payload = record["payload"]
    assert isinstance(payload, dict)
    return {**record, "payload": {"severity": payload["severity"]}}
