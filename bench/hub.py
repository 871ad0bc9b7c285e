"""signalhub: the real enforcer worker on a realistic mix, as a subscriber would see it.

Every signal type, the shipped subscriptions (``config/subscriptions.toml``: about 4.4 per type,
several denied by the policy on purpose), 1-2 KB records from :mod:`bench.workload`. Three
figures, all from consuming the outputs:

* throughput: signals/s and deliveries/s over a preloaded backlog (the audit topic carries one
  entry per signal with all its decisions, written after its deliveries, so a signal is done
  when its audit entry is on the topic);
* latency at half of that rate: publish time of the signal (its record timestamp) to the moment
  the subscriber's consumer receives the delivery; also to the delivery's own record timestamp
  (when the enforcer handed it over), which leaves out the subscriber's fetch wait;
* peak RSS of the enforcer process (VmHWM) after both phases.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import (
    Mode,
    OutputCount,
    Row,
    bench_settings,
    children_running,
    count_outputs,
    percentile,
    produce,
    scratch_dir,
    vm_hwm_mb,
)
from bench.workload import EncodedSignal, SignalFactory
from signalhub.apps.stack import EnforcerProcess
from signalhub.broker.admin import create_topics
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.config import Settings
from signalhub.enforcer.worker import enforcer_topics
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, by_signal_type, load_subscriptions
from signalhub.wire import AUDIT_TOPIC, delivery_id

__all__ = ["Throughput", "enforcers", "run", "run_durable", "throughput"]


@dataclass(frozen=True)
class Throughput:
    signals: int
    decisions: int
    deliveries: int
    seconds: float

    @property
    def signals_per_s(self) -> float:
        return self.signals / self.seconds

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.seconds


def run(mode: Mode, registry: SchemaRegistry, *, durable: bool = False) -> list[Row]:
    """The rows of bench ``signalhub``; with ``durable``, of ``signalhub durable``: the same
    workload on the durable embedded broker (tansu on s3rver over a scratch directory)."""
    bench = "signalhub durable" if durable else "signalhub"
    with (
        scratch_dir("hub") as scratch,
        EmbeddedBroker(data_dir=scratch / "broker" if durable else None) as broker,
    ):
        settings = bench_settings(scratch)
        bootstrap = broker.bootstrap_servers
        subscriptions = by_signal_type(load_subscriptions(settings.subscriptions_file))
        factory = SignalFactory(registry, seed=11)
        backlog = list(factory.signals(mode.hub_signals))
        create_hub_topics(settings, bootstrap)
        produce(bootstrap, ((s.topic, s.key, s.value) for s in backlog))
        with enforcers(settings, bootstrap, scratch, 1) as workers:
            result = throughput(settings, bootstrap, backlog, subscriptions, workers)
            rate = result.signals_per_s / 2
            count = max(int(rate * mode.latency_seconds), 50)
            paced = list(factory.signals(count))
            to_consumer, to_record = asyncio.run(
                _latency(bootstrap, settings, paced, subscriptions, rate)
            )
            pids = children_running("signalhub enforcer")
            rss = max((vm_hwm_mb(pid) or 0.0) for pid in pids) if pids else None
    per_type = sum(len(subscriptions.get(t, ())) for t in registry.signal_types()) / len(
        registry.signal_types()
    )
    facts = {
        "signals": result.signals,
        "decisions": result.decisions,
        "deliveries": result.deliveries,
        "denials": result.decisions - result.deliveries,
        "seconds": result.seconds,
        "subscriptions_per_type": round(per_type, 2),
        "mean_record_bytes": round(sum(len(s.value) for s in backlog) / len(backlog)),
    }
    latency = {"rate_per_s": round(rate), "signals": len(paced), "deliveries": len(to_consumer)}
    return [
        Row(bench, "signals/s", result.signals_per_s, "sig/s", "1 worker", facts),
        Row(
            bench,
            "deliveries/s",
            result.deliveries_per_s,
            "del/s",
            f"{result.deliveries / result.signals:.2f} deliveries, "
            f"{result.decisions / result.signals:.2f} audited decisions per signal",
        ),
        Row(
            bench,
            "latency p50",
            percentile(to_consumer, 50),
            "ms",
            f"publish -> subscriber consumer, at {rate:.0f} sig/s",
            latency,
        ),
        Row(
            bench,
            "latency p99",
            percentile(to_consumer, 99),
            "ms",
            f"publish -> subscriber consumer, at {rate:.0f} sig/s",
            latency,
        ),
        Row(
            bench,
            "hand-over p99",
            percentile(to_record, 99),
            "ms",
            "publish -> delivery record timestamp (no subscriber fetch wait)",
            latency,
        ),
        Row(bench, "peak RSS", rss, "MB", "enforcer process VmHWM"),
    ]


def run_durable(mode: Mode, registry: SchemaRegistry) -> list[Row]:
    """Bench ``signalhub durable``: :func:`run` on the durable embedded broker."""
    return run(mode, registry, durable=True)


def create_hub_topics(settings: Settings, bootstrap: str) -> None:
    sources, sinks = enforcer_topics(settings)
    create_topics(bootstrap, sources, partitions=settings.partitions)
    create_topics(bootstrap, sinks, partitions=1)


@contextmanager
def enforcers(
    settings: Settings, bootstrap: str, scratch: Path, count: int
) -> Iterator[list[EnforcerProcess]]:
    """``count`` enforcer worker processes in one consumer group, stopped on exit."""
    env = {
        "SIGNALHUB_HOME": str(settings.home),
        "SIGNALHUB_STATE_DIR": str(settings.state_dir),
        "SIGNALHUB_PARTITIONS": str(settings.partitions),
        "SIGNALHUB_ENFORCER_GROUP": settings.enforcer_group,
    }
    if settings.key_file is not None:
        env["SIGNALHUB_KEY_FILE"] = str(settings.key_file)
    workers = [
        EnforcerProcess(bootstrap, scratch / f"enforcer-{index}.log", env) for index in range(count)
    ]
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        # Killed, not stopped: the figures are taken by now, and a graceful faust shutdown
        # (commit, flush, leave the group) costs seconds per worker.
        for worker in workers:
            worker.kill()


def throughput(
    settings: Settings,
    bootstrap: str,
    signals: Sequence[EncodedSignal],
    subscriptions: dict[str, tuple[Subscription, ...]] | object,
    workers: Sequence[EnforcerProcess],
) -> Throughput:
    """Count every output of ``signals`` until each one's audit entry is on the topic."""
    subs: dict[str, tuple[Subscription, ...]] = subscriptions  # type: ignore[assignment]
    decisions = sum(max(len(subs.get(s.signal_type, ())), 1) for s in signals)
    _, sinks = enforcer_topics(settings)

    def alive() -> None:
        for worker in workers:
            worker.check_alive()

    seen: OutputCount = count_outputs(
        bootstrap,
        dict.fromkeys(sinks, 1),
        until={AUDIT_TOPIC: len(signals)},
        idle_s=0.5,
        timeout_s=600,
        alive=alive,
    )
    deliveries = sum(n for t, n in seen.per_topic.items() if t.startswith("deliveries."))
    # One entry per signal holds its decisions: one per subscription of its type, else one.
    return Throughput(len(signals), decisions, deliveries, seen.window_s)


async def _latency(
    bootstrap: str,
    settings: Settings,
    signals: Sequence[EncodedSignal],
    subscriptions: dict[str, tuple[Subscription, ...]] | object,
    rate: float,
) -> tuple[list[float], list[float]]:
    """Publish ``signals`` at ``rate``/s; per delivery: (ms to the consumer, ms to its record)."""
    subs: dict[str, tuple[Subscription, ...]] = subscriptions  # type: ignore[assignment]
    owner: dict[bytes, bytes] = {}
    for signal in signals:
        for sub in subs.get(signal.signal_type, ()):
            owner[delivery_id(signal.signal_id, sub.subscriber).encode()] = signal.key
    _, sinks = enforcer_topics(settings)
    topics = [t for t in sinks if t.startswith("deliveries.")]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    await consumer.start()
    await producer.start()
    sent: dict[bytes, float] = {}
    to_consumer: list[float] = []
    to_record: list[float] = []
    try:
        assigned = [TopicPartition(t, 0) for t in topics]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        while await consumer.getmany(timeout_ms=500, max_records=100_000):
            pass  # skip the throughput phase's deliveries
        publishing = asyncio.create_task(_publish_paced(producer, signals, rate, sent))
        quiet_since = time.monotonic()
        while not publishing.done() or time.monotonic() - quiet_since < 1.0:
            batch = await consumer.getmany(timeout_ms=100)
            now_ms = time.time() * 1000
            for records in batch.values():
                for record in records:
                    key = owner.get(record.key)
                    if key is None or key not in sent:
                        continue
                    quiet_since = time.monotonic()
                    to_consumer.append(now_ms - sent[key])
                    to_record.append(record.timestamp - sent[key])
        await publishing
    finally:
        await producer.stop()
        await consumer.stop()
    return to_consumer, to_record


async def _publish_paced(
    producer: AIOKafkaProducer,
    signals: Sequence[EncodedSignal],
    rate: float,
    sent: dict[bytes, float],
) -> None:
    """Send at ``rate`` signals/s in 5 ms ticks; each record stamped with its send time."""
    start = time.monotonic()
    index = 0
    while index < len(signals):
        due = min(int((time.monotonic() - start) * rate) + 1, len(signals))
        while index < due:
            signal = signals[index]
            stamp = int(time.time() * 1000)
            sent[signal.key] = stamp
            await producer.send(signal.topic, signal.value, key=signal.key, timestamp_ms=stamp)
            index += 1
        await asyncio.sleep(0.005)
    await producer.flush()
