"""Reading a subscriber's deliveries back as JSON-friendly records (CLI, pull API, webhooks).

Every channel hands a subscriber the same shape, :meth:`DeliveredRecord.to_json`::

    {"delivery_id", "signal_type", "policy_version", "topic", "partition", "offset",
     "record": {"envelope": {...}, "delivery": {...}, "payload": {...}}}

with datetimes and dates as ISO 8601 strings. Delivery is at-least-once: the same
``delivery_id`` can arrive twice, and a consumer de-duplicates on it (``dedupe=True`` here).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.types import JSON, AvroSchema, Record
from signalhub.wire import (
    DELIVERY_ID_HEADER,
    POLICY_VERSION_HEADER,
    SIGNAL_TYPE_HEADER,
    deliveries_topic,
    header,
)

__all__ = ["DeliveredRecord", "decode_delivery", "read_deliveries", "to_json_value"]


def to_json_value(value: Any) -> JSON:
    """A decoded Avro value as JSON: datetimes/dates ISO 8601 (UTC), bytes base64, maps as dicts."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


@dataclass(frozen=True)
class DeliveredRecord:
    """One delivery as read from ``deliveries.<subscriber>``, decoded to JSON-friendly values."""

    delivery_id: str
    signal_type: str
    policy_version: str
    topic: str
    partition: int
    offset: int
    record: Record
    schema: AvroSchema

    def to_json(self) -> dict[str, JSON]:
        """The shape every channel hands out (see the module docstring)."""
        return {
            "delivery_id": self.delivery_id,
            "signal_type": self.signal_type,
            "policy_version": self.policy_version,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "record": self.record,
        }

    def pseudonymised_fields(self) -> list[str]:
        """Payload fields of this record that hold pseudonyms (marked so in the view schema)."""
        marked = [f["name"] for f in _payload_fields(self.schema) if f.get("pseudonymised")]
        if marked:
            return marked
        # A schema read back in canonical form has lost its metadata: recognise the pseudonyms.
        payload = self.record.get("payload") or {}
        return [k for k, v in payload.items() if isinstance(v, str) and v.startswith("pn1.")]

    def generalised_fields(self) -> dict[str, str]:
        """``{field: method}`` of the payload fields delivered generalised (an age band in
        ``subject_birth_date``), as the delivery block says."""
        marked = (self.record.get("delivery") or {}).get("generalised") or {}
        return {str(name): str(method) for name, method in marked.items()}


def _payload_fields(schema: AvroSchema) -> list[dict[str, Any]]:
    for f in schema.get("fields", []):
        if f.get("name") == "payload" and isinstance(f.get("type"), dict):
            fields: list[dict[str, Any]] = f["type"].get("fields", [])
            return fields
    return []


def decode_delivery(catalog: ViewSchemaCatalog, message: Any) -> DeliveredRecord:
    """Decode one Kafka message of a deliveries topic (UnknownSchemaError / DecodeError)."""
    schema, decoded = catalog.decode(bytes(message.value))
    record: Record = to_json_value(decoded)
    delivery = record.get("delivery") or {}
    envelope = record.get("envelope") or {}
    key = bytes(message.key).decode("utf-8", "replace") if message.key else None
    return DeliveredRecord(
        delivery_id=header(message, DELIVERY_ID_HEADER) or delivery.get("delivery_id") or key or "",
        signal_type=header(message, SIGNAL_TYPE_HEADER) or envelope.get("signal_type", ""),
        policy_version=(
            header(message, POLICY_VERSION_HEADER) or delivery.get("policy_version", "")
        ),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        record=record,
        schema=schema,
    )


def read_deliveries(
    bootstrap_servers: str,
    subscriber: str,
    catalog: ViewSchemaCatalog,
    *,
    from_beginning: bool = True,
    idle_ms: int = 1000,
    follow: bool = False,
    dedupe: bool = False,
) -> Iterator[DeliveredRecord]:
    """Yield ``subscriber``'s deliveries in offset order per partition.

    Reads from the beginning (the default) or from ``from_beginning=False``'s current end as
    of the first read, and stops after ``idle_ms`` without a record unless ``follow``, which
    reads until the caller stops iterating. The end is found by idling, never from the
    broker's end offsets (tansu under-reports them). ``dedupe`` skips a ``delivery_id`` seen
    before in this read.
    """
    topic = deliveries_topic(subscriber)
    consumer = open_consumer(bootstrap_servers, client_id=f"signalhub-read-{subscriber}")
    seen: set[str] = set()
    try:
        assigned = assign_topic(consumer, topic)
        if assigned and not from_beginning:
            # Skip what is there now by reading it: seek_to_end trusts the end offset.
            for _ in drain(consumer, idle_ms=idle_ms):
                pass
        while True:
            messages = drain(consumer, idle_ms=idle_ms) if assigned else iter(())
            for message in messages:
                delivered = decode_delivery(catalog, message)
                if dedupe:
                    if delivered.delivery_id in seen:
                        continue
                    seen.add(delivered.delivery_id)
                yield delivered
            if not follow:
                return
            if not assigned:  # the topic does not exist yet; look again after a pause
                time.sleep(idle_ms / 1000)
                assigned = assign_topic(consumer, topic)
    finally:
        consumer.close()
