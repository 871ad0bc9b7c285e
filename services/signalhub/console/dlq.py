"""The dead-letter queue as the console shows it: reasons, masked records, and replay.

``signals.dlq`` holds the original bytes of every record the enforcer could not process, so it
holds clear identifiers. The console never shows them: a record that decodes is shown with every
payload field the schema marks ``pii`` (and every field the schema does not know) and the
agency's record key (``envelope.source_ref``) replaced by a mask; a record that does not decode
is shown by size and digest only. Replay sends the original bytes, unchanged, back to the signal
topic they came from (after a fix: a schema registered, a connector corrected), once per dead
letter; what was replayed is remembered under the state
directory and written to the console audit log by the caller.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.connector.publisher import KafkaPublisher
from signalhub.delivery.reader import to_json_value
from signalhub.errors import SignalhubError, UnknownSchemaError
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.wire import (
    DETAIL_HEADER,
    DLQ_TOPIC,
    FAILED_AT_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    header,
)

__all__ = [
    "MASK",
    "SHOWN_ENVELOPE_FIELDS",
    "DeadLetter",
    "ReplayLog",
    "mask_signal",
    "read_dead_letters",
    "replay",
]

MASK = "•••"


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record as the console may show it (no clear identifier)."""

    partition: int
    offset: int
    key: str | None
    reason: str
    detail: str
    source_topic: str
    source: str
    failed_at: str
    size: int
    digest: str
    #: The decoded record with identifiers masked, or None when it does not decode.
    masked: dict[str, Any] | None
    value: bytes
    raw_key: bytes | None = None

    @property
    def ref(self) -> str:
        return f"{self.partition}@{self.offset}"

    def masked_json(self) -> str:
        if self.masked is None:
            return f"(not decodable: {self.size} bytes, sha256 {self.digest[:16]}…)"
        return json.dumps(self.masked, indent=2, ensure_ascii=False, sort_keys=True)


#: Envelope fields an operator may see: what kind of record, from whom, when, under which id.
#: Anything else is masked, the agency's own record key (``source_ref``: a police registration
#: number, or a BSN where an agency keys its records by it) first of all.
SHOWN_ENVELOPE_FIELDS = frozenset(
    {"signal_id", "signal_type", "source_agency", "observed_at", "registered_at", "schema_version"}
)


def mask_signal(registry: SchemaRegistry, record: dict[str, Any]) -> dict[str, Any]:
    """The record with every pii payload field (and every field the schema does not know) and
    every envelope field but :data:`SHOWN_ENVELOPE_FIELDS` masked."""
    envelope = record.get("envelope")
    payload = record.get("payload")
    if not isinstance(envelope, dict) or not isinstance(payload, dict):
        return {"masked": MASK}
    try:
        schema = registry.signal(str(envelope.get("signal_type", "")))
        known = {spec.name: spec for spec in schema.payload_fields}
    except UnknownSchemaError:
        known = {}
    shown: dict[str, Any] = {}
    for name, value in payload.items():
        spec = known.get(name)
        if value is None:
            shown[name] = None
        elif spec is None or spec.pii is not None:
            shown[name] = MASK
        else:
            shown[name] = to_json_value(value)
    return {
        "envelope": {
            k: to_json_value(v) if k in SHOWN_ENVELOPE_FIELDS or v is None else MASK
            for k, v in envelope.items()
        },
        "payload": shown,
    }


def _dead_letter(registry: SchemaRegistry, message: Any) -> DeadLetter:
    value = bytes(message.value or b"")
    masked: dict[str, Any] | None
    try:
        _, record = codec.decode(registry, value)
        masked = mask_signal(registry, record)
    except SignalhubError:
        masked = None
    return DeadLetter(
        partition=message.partition,
        offset=message.offset,
        key=message.key.decode("utf-8", "replace") if message.key else None,
        reason=header(message, REASON_HEADER) or "unknown",
        detail=header(message, DETAIL_HEADER) or "",
        source_topic=header(message, SOURCE_TOPIC_HEADER) or "",
        source=(
            f"{header(message, SOURCE_TOPIC_HEADER)}"
            f"[{header(message, SOURCE_PARTITION_HEADER)}]"
            f"@{header(message, SOURCE_OFFSET_HEADER)}"
        ),
        failed_at=header(message, FAILED_AT_HEADER) or "",
        size=len(value),
        digest=hashlib.sha256(value).hexdigest(),
        masked=masked,
        value=value,
        raw_key=bytes(message.key) if message.key is not None else None,
    )


def read_dead_letters(
    bootstrap_servers: str, registry: SchemaRegistry, *, idle_ms: int = 400, limit: int = 1000
) -> list[DeadLetter]:
    """Every record on ``signals.dlq`` (the first ``limit``), read until the topic is idle."""
    consumer = open_consumer(bootstrap_servers, client_id="signalhub-console-dlq")
    try:
        assign_topic(consumer, DLQ_TOPIC)
        return [
            _dead_letter(registry, message)
            for message in drain(consumer, idle_ms=idle_ms, max_records=limit)
        ]
    finally:
        consumer.close()


class ReplayLog:
    """Which dead letters were replayed already (``partition@offset``), in the state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def replayed(self) -> dict[str, dict[str, str]]:
        try:
            body = json.loads(self.path.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}

    def mark(self, ref: str, user: str, topic: str) -> None:
        entries = self.replayed()
        entries[ref] = {"by": user, "to": topic, "at": datetime.now(UTC).isoformat()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(entries, indent=2, sort_keys=True), "utf-8")


def replay(
    bootstrap_servers: str,
    registry: SchemaRegistry,
    letters: list[DeadLetter],
    log: ReplayLog,
    user: str,
) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """Republish the original bytes of ``letters`` to their source topics.

    Returns (replayed, refused with why). Refused: replayed before, or a source topic that is not
    one of the hub's signal topics (the header is data; it must not steer records elsewhere).
    """
    signal_topics = {registry.signal(t).topic for t in registry.signal_types()}
    done = log.replayed()
    todo: list[DeadLetter] = []
    refused: list[tuple[DeadLetter, str]] = []
    for letter in letters:
        if letter.ref in done:
            refused.append((letter, "replayed before"))
        elif letter.source_topic not in signal_topics:
            refused.append((letter, f"source topic {letter.source_topic!r} is not a signal topic"))
        else:
            todo.append(letter)
    if not todo:
        return [], refused
    publisher = KafkaPublisher(bootstrap_servers, client_id="signalhub-console-replay")
    try:
        for letter in todo:
            publisher.publish(letter.source_topic, letter.raw_key or b"", letter.value)
        publisher.flush()
    finally:
        publisher.close()
    for letter in todo:
        log.mark(letter.ref, user, letter.source_topic)
    return todo, refused
