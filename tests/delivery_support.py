"""Builders for delivery tests: real view schemas, real encoded deliveries on the real broker.

They write what the enforcer writes (``deliveries.<subscriber>`` with its headers, and each view
schema to a schemas topic first), so the delivery channels are tested against the real format.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer

from signalhub.config import load_settings
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import AvroSchema, Record
from signalhub.wire import canonical_json

CLEAR = ("category", "severity", "neighbourhood_code")
PSEUDONYMISED = ("subject_bsn",)


def fresh_registry() -> SchemaRegistry:
    return SchemaRegistry.from_dir(load_settings().schemas_dir)


def nuisance_view(registry: SchemaRegistry) -> AvroSchema:
    return registry.view_schema("nuisance_report", CLEAR, PSEUDONYMISED)


def view_record(subscriber: str, n: int) -> Record:
    signal_id = str(uuid.uuid4())
    stamp = datetime(2025, 3, 1, 12, 0, n % 60, tzinfo=UTC)
    return {
        "envelope": {
            "signal_id": signal_id,
            "signal_type": "nuisance_report",
            "source_agency": "politie",
            "source_ref": f"ref-{n}",
            "observed_at": stamp,
            "registered_at": stamp,
            "schema_version": 1,
        },
        "delivery": {
            "delivery_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{signal_id}/{subscriber}")),
            "subscriber": subscriber,
            "purpose": "prevent_housing_nuisance",
            "legal_basis": "covenant",
            "policy_version": "sha256:test",
            "pseudonym_domain": subscriber,
            "withheld": ["subject_name", "address", "postcode", "reporter_type", "description"],
        },
        "payload": {
            "category": "noise",
            "severity": 1 + n % 5,
            "neighbourhood_code": "BU09350101",
            "subject_bsn": f"pn1.k1.{n:032d}",
        },
    }


def publish_view_schema(bootstrap: str, topic: str, schema: AvroSchema) -> None:
    """What the enforcer does: fingerprint hex as key, the (parsed) schema as sorted JSON."""
    registry = SchemaRegistry()
    fingerprint = registry.register(schema)
    text = canonical_json(schema)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(topic, key=fingerprint.hex().encode(), value=text.encode()).get(10)
    finally:
        producer.close()


def produce_deliveries(
    bootstrap: str,
    subscriber: str,
    registry: SchemaRegistry,
    schema: AvroSchema,
    count: int,
    *,
    start: int = 0,
    extra: Sequence[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = (),
) -> list[str]:
    """Produce ``count`` encoded deliveries to ``deliveries.<subscriber>``; their delivery ids."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    ids: list[str] = []
    try:
        for n in range(start, start + count):
            record = view_record(subscriber, n)
            delivery_id = record["delivery"]["delivery_id"]
            headers = [
                ("signalhub.delivery_id", delivery_id.encode()),
                ("signalhub.signal_type", b"nuisance_report"),
                ("signalhub.policy_version", b"sha256:test"),
            ]
            producer.send(
                f"deliveries.{subscriber}",
                key=delivery_id.encode(),
                value=codec.encode(registry, schema, record),
                headers=headers,
            )
            ids.append(delivery_id)
        for key, value, headers in extra:
            producer.send(f"deliveries.{subscriber}", key=key, value=value, headers=headers)
        producer.flush(10)
    finally:
        producer.close()
    return ids


def records_of(bootstrap: str, topic: str, idle_ms: int = 800) -> list[Any]:
    """Every record of ``topic`` (read until idle, never trusting end offsets)."""
    from signalhub.broker.reader import assign_topic, drain, open_consumer

    consumer = open_consumer(bootstrap)
    try:
        if not assign_topic(consumer, topic):
            return []
        return list(drain(consumer, idle_ms=idle_ms))
    finally:
        consumer.close()


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test HTTP server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
