"""The records the enforcer reads and writes besides deliveries: dead letters, parked signals,
view schemas and leak-guard reports, with the headers that say why and where.

Failure records keep the original bytes unchanged, so a record can be replayed after a fix; the
reason travels in headers (``signalhub.reason``, ``signalhub.detail``, ``signalhub.source.*``,
``signalhub.failed_at``), never as a rewritten value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from signalhub.types import JSON

__all__ = [
    "BLOCKED_TOPIC",
    "DLQ_TOPIC",
    "PARKED_TOPIC",
    "VIEW_SCHEMA_TOPIC",
    "Headers",
    "Output",
    "SourceRecord",
    "blocked_report",
    "canonical_json",
    "dead_letter",
    "delivery",
    "parked",
]

DLQ_TOPIC = "signals.dlq"
PARKED_TOPIC = "signals.parked"
VIEW_SCHEMA_TOPIC = "schemas.views"
#: Deliveries the leak guard stopped: a JSON report {delivery_id, signal_id, subscriber, reasons,
#: ...}, never the delivery itself.
BLOCKED_TOPIC = "deliveries.blocked"

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class SourceRecord:
    """A record as fetched from a signal topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Output:
    """A record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


def delivery(
    topic: str, delivery_id: str, signal_type: str, policy_version: str, value: bytes
) -> Output:
    """A delivery, keyed by its delivery id, with the headers channels route and de-duplicate by."""
    headers: Headers = (
        ("signalhub.delivery_id", delivery_id.encode()),
        ("signalhub.signal_type", signal_type.encode()),
        ("signalhub.policy_version", policy_version.encode()),
    )
    return Output(topic, delivery_id.encode(), value, headers)


def dead_letter(record: SourceRecord, code: str, detail: str, now: datetime) -> Output:
    """The original bytes, unchanged, on the DLQ with why and where in the headers."""
    return Output(
        DLQ_TOPIC, record.key, record.value or b"", _failure_headers(record, code, detail, now)
    )


def parked(record: SourceRecord, detail: str, now: datetime) -> Output:
    """A signal whose policy could not be evaluated, kept for ``signalhub policy retry-parked``."""
    headers = _failure_headers(record, "policy_error", detail, now)
    return Output(PARKED_TOPIC, record.key, record.value or b"", headers)


def blocked_report(report: dict[str, JSON], reason: str, now: datetime) -> Output:
    """What a blocked delivery leaves behind: why and where, never the delivery's content."""
    headers: Headers = (
        ("signalhub.reason", b"leak_guard"),
        ("signalhub.detail", reason.encode()),
        ("signalhub.delivery_id", str(report["delivery_id"]).encode()),
        ("signalhub.signal_type", str(report["signal_type"]).encode()),
        ("signalhub.policy_version", str(report["policy_version"]).encode()),
        ("signalhub.failed_at", now.isoformat().encode()),
    )
    key = str(report["delivery_id"]).encode()
    return Output(BLOCKED_TOPIC, key, canonical_json(report).encode(), headers)


def canonical_json(document: JSON) -> str:
    """Compact JSON with sorted keys: the same document always gives the same bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _failure_headers(record: SourceRecord, code: str, detail: str, now: datetime) -> Headers:
    return (
        ("signalhub.reason", code.encode()),
        ("signalhub.detail", detail.encode()),
        ("signalhub.source.topic", record.topic.encode()),
        ("signalhub.source.partition", str(record.partition).encode()),
        ("signalhub.source.offset", str(record.offset).encode()),
        ("signalhub.failed_at", now.isoformat().encode()),
    )
