"""The records the enforcer reads and writes besides deliveries: dead letters, parked signals,
view schemas and leak-guard reports, with the headers that say why and where.

Failure records keep the original bytes unchanged, so a record can be replayed after a fix; the
reason travels in headers (:mod:`signalhub.wire` names them), never as a rewritten value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from signalhub.types import JSON
from signalhub.wire import (
    BLOCKED_TOPIC,
    DELIVERY_ID_HEADER,
    DETAIL_HEADER,
    DLQ_TOPIC,
    FAILED_AT_HEADER,
    PARKED_TOPIC,
    POLICY_VERSION_HEADER,
    REASON_HEADER,
    SIGNAL_TYPE_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    canonical_json,
)

__all__ = [
    "Headers",
    "Output",
    "SourceRecord",
    "blocked_report",
    "dead_letter",
    "delivery",
    "delivery_headers",
    "parked",
]

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


def delivery_headers(delivery_id: str, signal_type: str, policy_version: str) -> Headers:
    """The headers channels route and de-duplicate by (the leak guard scans them too)."""
    return (
        (DELIVERY_ID_HEADER, delivery_id.encode()),
        (SIGNAL_TYPE_HEADER, signal_type.encode()),
        (POLICY_VERSION_HEADER, policy_version.encode()),
    )


def delivery(topic: str, delivery_id: str, value: bytes, headers: Headers) -> Output:
    """A delivery, keyed by its delivery id, with its :func:`delivery_headers`."""
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
        (REASON_HEADER, b"leak_guard"),
        (DETAIL_HEADER, reason.encode()),
        (DELIVERY_ID_HEADER, str(report["delivery_id"]).encode()),
        (SIGNAL_TYPE_HEADER, str(report["signal_type"]).encode()),
        (POLICY_VERSION_HEADER, str(report["policy_version"]).encode()),
        (FAILED_AT_HEADER, now.isoformat().encode()),
    )
    key = str(report["delivery_id"]).encode()
    return Output(BLOCKED_TOPIC, key, canonical_json(report).encode(), headers)


def _failure_headers(record: SourceRecord, code: str, detail: str, now: datetime) -> Headers:
    return (
        (REASON_HEADER, code.encode()),
        (DETAIL_HEADER, detail.encode()),
        (SOURCE_TOPIC_HEADER, record.topic.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
        (FAILED_AT_HEADER, now.isoformat().encode()),
    )
