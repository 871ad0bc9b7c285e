"""Limit: a raw aiokafka consume -> produce pass-through, batched, no processing.

The same client library faust drives under the enforcer, the same 1-2 KB records, no
framework: the fastest this broker and this client can move records through one Python process.
Nothing can do less work per record, so every other row is a fraction of this one.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import Mode, Row, produce
from bench.workload import SignalFactory
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.schema.registry import SchemaRegistry

__all__ = ["passthrough", "run"]

_IN, _OUT, _PARTITIONS = "bench.limit.in", "bench.limit.out", 2


def run(mode: Mode, registry: SchemaRegistry) -> list[Row]:
    signals = list(SignalFactory(registry).signals(min(mode.limit_records, 5_000)))
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        broker.create_topics([_IN], partitions=_PARTITIONS)
        broker.create_topics([_OUT], partitions=1)
        records = (
            (_IN, signals[i % len(signals)].key + str(i).encode(), signals[i % len(signals)].value)
            for i in range(mode.limit_records)
        )
        produce(bootstrap, records)
        moved, seconds = asyncio.run(
            passthrough(bootstrap, _IN, _PARTITIONS, _OUT, mode.limit_records)
        )
    rate = moved / seconds if seconds else 0.0
    return [
        Row(
            "limit",
            "records/s",
            rate,
            "rec/s",
            "raw aiokafka consume->produce, batches of 500, sends not awaited",
            {"records": moved, "seconds": seconds},
        )
    ]


async def passthrough(
    bootstrap: str, source: str, partitions: int, sink: str, expected: int
) -> tuple[int, float]:
    """Copy ``expected`` records from ``source`` to ``sink``: (records moved, seconds).

    The clock starts at the first fetched record and stops when the producer has flushed the
    last one (every record acknowledged by the broker).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=-1, linger_ms=0, max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    moved, started = 0, 0.0
    try:
        assigned = [TopicPartition(source, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        idle_deadline = time.monotonic() + 30
        while moved < expected and time.monotonic() < idle_deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batch:
                continue
            if not started:
                started = time.perf_counter()
            idle_deadline = time.monotonic() + 30
            for records in batch.values():
                for record in records:
                    await producer.send(sink, record.value, key=record.key)
                    moved += 1
        await producer.flush()
    finally:
        await producer.stop()
        await consumer.stop()
    return moved, time.perf_counter() - started if started else 0.0
