"""The enforcer as a faust worker: read signal topics, call the pure core, produce its outputs.

Everything that decides lives in :mod:`signalhub.enforcement`; this module only wires it to
Kafka. Two adjustments at the edge, both because of the embedded broker (DESIGN.md):

* faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500`` and tansu holds every fetch for
  the full wait, which put a ~1.3 s floor under latency. :class:`_ShortFetchConsumerThread`
  sets the configured wait (default 100 ms) on the consumer before it starts.
* faust Tables restore stale state from tansu's changelogs, so the enforcer keeps no state in
  them: decisions are recomputed, memoised in memory only.

At-least-once: outputs are handed to the producer before the event is acknowledged, and faust
flushes the producer before it commits offsets, so a crash re-processes (same ``delivery_id``)
but never loses a signal.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from signalhub import audit
from signalhub.broker import create_topics
from signalhub.config import Settings
from signalhub.enforcement import (
    DLQ_TOPIC,
    PARKED_TOPIC,
    VIEW_SCHEMA_TOPIC,
    Enforcement,
    SourceRecord,
)
from signalhub.policy import EmbeddedPolicyEngine, MemoisedPolicy
from signalhub.pseudonym import Pseudonymiser, load_master_key
from signalhub.schema import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions, subscribers

__all__ = ["build_enforcement", "build_enforcer_app", "enforcer_topics", "run_enforcer"]

logger = logging.getLogger(__name__)

#: Events handled per batch; one log line and one producer hand-off loop per batch.
BATCH_SIZE = 500
#: How long a batch waits to fill before it is processed anyway (seconds).
BATCH_WITHIN_S = 0.01


class _ShortFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread with a configurable fetch wait instead of 1500 ms."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its fetcher in start().
        consumer._fetch_max_wait_ms = self.app.conf.signalhub_fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ShortFetchConsumerThread:
        return _ShortFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class _EnforcerApp(faust.App):
    """A faust App whose Kafka transport uses :class:`_ShortFetchConsumerThread`."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def build_enforcement(settings: Settings) -> Enforcement:
    """The pure core, configured from files and keys (no broker needed)."""
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    subscriptions = load_subscriptions(settings.subscriptions_file, registry.signal_types())
    policy = MemoisedPolicy(EmbeddedPolicyEngine.from_dir(settings.policies_dir))
    master_key, key_version = load_master_key(settings)
    return Enforcement(
        registry,
        by_signal_type(subscriptions),
        policy,
        Pseudonymiser(master_key, key_version),
        audit.load_audit_schema(settings.schemas_dir),
        max_record_bytes=settings.max_record_bytes,
    )


def enforcer_topics(settings: Settings) -> tuple[list[str], list[str]]:
    """(signal topics it reads, topics it writes), from the schemas and subscriptions."""
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    sources = [registry.signal(signal_type).topic for signal_type in registry.signal_types()]
    names = subscribers(load_subscriptions(settings.subscriptions_file))
    sinks = [f"deliveries.{name}" for name in names]
    sinks += [audit.AUDIT_TOPIC, DLQ_TOPIC, PARKED_TOPIC, VIEW_SCHEMA_TOPIC]
    return sources, sinks


def build_enforcer_app(
    settings: Settings, bootstrap_servers: str, enforcement: Enforcement
) -> faust.App:
    """The faust app with one agent over every signal topic."""
    sources, sinks = enforcer_topics(settings)
    create_topics(bootstrap_servers, sources, partitions=settings.partitions)
    create_topics(bootstrap_servers, sinks, partitions=1)
    app = _EnforcerApp(
        settings.enforcer_group,
        broker=f"kafka://{bootstrap_servers}",
        web_enabled=False,
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        key_serializer="raw",
        value_serializer="raw",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_allow_declare=False,
        topic_disable_leader=True,
    )
    app.conf.signalhub_fetch_max_wait_ms = settings.fetch_max_wait_ms
    signal_topics = app.topic(*sources, key_type=bytes, value_type=bytes)

    @app.agent(signal_topics, name="enforce")
    async def enforce(stream: Any) -> AsyncIterator[None]:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            await _enforce_batch(app, enforcement, events)
            yield None

    return app


async def _enforce_batch(app: faust.App, enforcement: Enforcement, events: Sequence[Any]) -> None:
    """Hand every output of every event to the producer; faust flushes before it commits."""
    producer = app.producer
    delivered_before = sum(enforcement.stats.deliveries.values())
    dead_before = sum(enforcement.stats.dead_letters.values())
    for event in events:
        message = event.message
        record = SourceRecord(
            message.topic, message.partition, message.offset, message.key, message.value
        )
        for output in enforcement.process(record):
            await producer.send(
                output.topic, output.key, output.value, None, None, list(output.headers)
            )
    first, last = events[0].message, events[-1].message
    logger.info(
        "%s[%d]@%d..%d: %d signals, %d deliveries, %d dead letters",
        first.topic,
        first.partition,
        first.offset,
        last.offset,
        len(events),
        sum(enforcement.stats.deliveries.values()) - delivered_before,
        sum(enforcement.stats.dead_letters.values()) - dead_before,
    )


def run_enforcer(settings: Settings, bootstrap_servers: str, *, loglevel: str = "warning") -> None:
    """Run the enforcer worker until it is stopped (SIGINT/SIGTERM); blocks."""
    enforcement = build_enforcement(settings)
    app = build_enforcer_app(settings, bootstrap_servers, enforcement)
    for noisy in ("aiokafka", "faust", "mode"):
        # Under a faust worker the root logger stays at DEBUG; building and discarding the
        # libraries' debug records on the send path cost ~11% throughput (DESIGN.md).
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
