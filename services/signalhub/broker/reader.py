"""Whole-topic reads that do not trust offsets, shared by the delivery channels, demo and tests.

The embedded broker (tansu) under-reports end offsets, so "have I read everything?" is never
answered from a high watermark: a read is complete when polls have returned nothing for an idle
period. Whole-topic reads use manual partition assignment (no consumer group), which starts
immediately instead of waiting for a group join.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kafka import TopicPartition

from signalhub.broker.clients import KafkaConnection, new_consumer
from signalhub.errors import BrokerError

if TYPE_CHECKING:
    from kafka import KafkaConsumer

__all__ = [
    "assign_topic",
    "assign_topics",
    "drain",
    "open_consumer",
]

#: How long one poll may wait; short because tansu holds a fetch for the full fetch wait.
_POLL_MS = 100


def open_consumer(bootstrap_servers: str, **config: Any) -> KafkaConsumer:
    """A kafka-python consumer with the hub's defaults (short fetch wait, no auto-commit)."""
    options: dict[str, Any] = {
        "enable_auto_commit": False,
        "fetch_max_wait_ms": 100,
        "client_id": "signalhub-delivery",
    }
    options.update(config)
    try:
        return new_consumer(KafkaConnection(bootstrap_servers), **options)
    except Exception as exc:
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap_servers}: {exc} — is the broker running?"
        ) from exc


def assign_topic(
    consumer: KafkaConsumer, topic: str, positions: Mapping[int, int] | None = None
) -> list[TopicPartition]:
    """Assign every partition of ``topic``; seek to ``positions`` where given, else the start.

    Returns the assigned partitions (none when the topic does not exist yet).
    """
    partitions = consumer.partitions_for_topic(topic) or set()
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    for tp in assigned:
        offset = (positions or {}).get(tp.partition)
        if offset is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)
    return assigned


def assign_topics(
    consumer: KafkaConsumer,
    topics: Iterable[str],
    *,
    from_committed: bool = False,
    timeout_ms: int | None = None,
) -> list[TopicPartition]:
    """Assign every partition of ``topics``; start at the beginning, or at the group's offsets.

    With ``from_committed`` each partition resumes at its consumer group's committed offset (the
    beginning when there is none): for readers that keep their position as group offsets but
    assign partitions themselves, because a group join takes seconds on tansu. With
    ``timeout_ms`` a committed-offset fetch that takes longer raises ``KafkaTimeoutError``
    (without it, it waits for the broker as long as it takes).
    """
    assigned = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    consumer.assign(assigned)
    for tp in assigned:
        committed = consumer.committed(tp, timeout_ms=timeout_ms) if from_committed else None
        if committed is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)
    return assigned


def drain(
    consumer: KafkaConsumer,
    *,
    idle_ms: int,
    first_wait_ms: int | None = None,
    max_records: int | None = None,
) -> Iterator[Any]:
    """Yield records until a poll round stays empty for ``idle_ms`` (or ``max_records`` reached).

    ``first_wait_ms`` (default ``idle_ms``) is how long to wait for the first record. Records
    come in offset order per partition; the caller decides what to do with each.
    """
    wait_ms = idle_ms if first_wait_ms is None else first_wait_ms
    count = 0
    deadline = time.monotonic() + wait_ms / 1000
    while max_records is None or count < max_records:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            return
        limit = None if max_records is None else max_records - count
        batch = consumer.poll(timeout_ms=min(_POLL_MS, remaining_ms), max_records=limit)
        if not batch:
            continue
        for records in batch.values():
            for record in records:
                yield record
                count += 1
        deadline = time.monotonic() + idle_ms / 1000
