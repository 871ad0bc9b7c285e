"""The enforcer as a faust worker: read signal topics, call the pure core, produce its outputs.

Everything that decides lives in :mod:`signalhub.enforcer.core`; this module only wires it to
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
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
import mode
from faust.transport.drivers import aiokafka as faust_aiokafka

from signalhub.audit import record as audit_record
from signalhub.broker.embedded import create_topics
from signalhub.config import Settings
from signalhub.connector.definition import load_definitions
from signalhub.enforcer.core import Enforcement
from signalhub.enforcer.metrics import serve_enforcer_metrics
from signalhub.enforcer.outputs import (
    BLOCKED_TOPIC,
    DLQ_TOPIC,
    PARKED_TOPIC,
    VIEW_SCHEMA_TOPIC,
    SourceRecord,
)
from signalhub.policy.corpus import policy_corpus
from signalhub.policy.switch import PolicyWatcher, SwitchablePolicy, engine_from_settings
from signalhub.pseudonym.keys import load_key_ring
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.pseudonym.vault import Vault, VaultSink
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions, subscribers
from signalhub.types import JSON

__all__ = [
    "build_enforcement",
    "build_enforcer_app",
    "enforcer_topics",
    "new_faust_app",
    "run_enforcer",
]

logger = logging.getLogger(__name__)

#: Events handled per batch; one log line and one producer hand-off loop per batch.
BATCH_SIZE = 500
#: How long a batch waits to fill before it is processed anyway (seconds).
BATCH_WITHIN_S = 0.01
#: The producer gathers records this long and up to this size per partition before a request:
#: a 500-signal batch fans out to ~1,700 records, and faust's defaults (no linger, 16 KB) sent
#: them as hundreds of small produce requests (bench/README.md).
PRODUCER_LINGER_S = 0.005
PRODUCER_BATCH_BYTES = 512 * 1024


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


def new_faust_app(settings: Settings, bootstrap_servers: str, group: str) -> faust.App:
    """A faust app configured the way the enforcer runs (also the benchmarks' framework floor).

    Raw bytes in and out, no web server (it would bind 0.0.0.0:6066), no tables, reading from the
    earliest offset of a new group, acks from all replicas, and the short fetch wait.
    """
    app = _EnforcerApp(
        group,
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
        producer_linger=PRODUCER_LINGER_S,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        topic_allow_declare=False,
        topic_disable_leader=True,
    )
    app.conf.signalhub_fetch_max_wait_ms = settings.fetch_max_wait_ms
    return app


def build_enforcement(settings: Settings) -> Enforcement:
    """The pure core, configured from files and keys (no broker needed)."""
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    subscriptions = by_signal_type(
        load_subscriptions(settings.subscriptions_file, registry.signal_types())
    )

    def every_policy_input() -> Iterator[JSON]:
        """What the memo is warmed with: the inputs the connectors' signals can give today."""
        agencies: dict[str, list[str]] = {}
        for definition in load_definitions(settings.connectors_dir).values():
            for signal_type in definition.signal_types():
                agencies.setdefault(signal_type, []).append(definition.agency)
        today = datetime.now(UTC).date()
        cases = policy_corpus(registry, subscriptions, today, sources=agencies)
        return (case.policy_input for case in cases)

    # The files in policies/ until the watcher (build_enforcer_app) applies a published version.
    policy = SwitchablePolicy(engine_from_settings(settings), warm_with=every_policy_input)
    ring = load_key_ring(settings)
    return Enforcement(
        registry,
        subscriptions,
        policy,
        Pseudonymiser(ring.key(), ring.current),
        audit_record.load_audit_schema(settings.schemas_dir),
        max_record_bytes=settings.max_record_bytes,
        pseudonym_sink=VaultSink(Vault.open(settings)),
        leak_guard=settings.leak_guard,
    )


def enforcer_topics(settings: Settings) -> tuple[list[str], list[str]]:
    """(signal topics it reads, topics it writes), from the schemas and subscriptions."""
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    sources = [registry.signal(signal_type).topic for signal_type in registry.signal_types()]
    names = subscribers(load_subscriptions(settings.subscriptions_file))
    sinks = [f"deliveries.{name}" for name in names]
    sinks += [audit_record.AUDIT_TOPIC, DLQ_TOPIC, PARKED_TOPIC, VIEW_SCHEMA_TOPIC, BLOCKED_TOPIC]
    return sources, sinks


def build_enforcer_app(
    settings: Settings, bootstrap_servers: str, enforcement: Enforcement
) -> faust.App:
    """The faust app with one agent over every signal topic.

    When the enforcement decides through a :class:`SwitchablePolicy`, the latest version on the
    ``policies`` topic is put in force before the first signal, and a watcher thread switches to
    every later one without a restart (``app.signalhub_policy_watcher``).
    """
    sources, sinks = enforcer_topics(settings)
    create_topics(bootstrap_servers, sources, partitions=settings.partitions)
    create_topics(bootstrap_servers, sinks, partitions=1)
    policy = enforcement.policy
    watcher = None
    if isinstance(policy, SwitchablePolicy):
        watcher = PolicyWatcher(settings, bootstrap_servers, policy)
        logger.info("policy %s in force at start-up", watcher.catch_up())
        watcher.start()
    app = new_faust_app(settings, bootstrap_servers, settings.enforcer_group)
    app.signalhub_policy_watcher = watcher  # type: ignore[attr-defined]
    signal_topics = app.topic(*sources, key_type=bytes, value_type=bytes)

    # An unexpected error in the agent is a bug: crash the worker (exit non-zero, offsets of the
    # failing batch uncommitted) instead of leaving a live process with a dead agent.
    @app.agent(signal_topics, name="enforce", supervisor_strategy=mode.CrashingSupervisor)
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
    sink = enforcement.pseudonym_sink
    if isinstance(sink, VaultSink):
        sink.flush()  # the vault holds every pseudonym before the offsets that issued it commit
    logger.info(
        "%s: %d signals, %d deliveries, %d dead letters",
        _offset_ranges(events),
        len(events),
        sum(enforcement.stats.deliveries.values()) - delivered_before,
        sum(enforcement.stats.dead_letters.values()) - dead_before,
    )


def _offset_ranges(events: Sequence[Any]) -> str:
    """``topic[partition]@first..last`` for each partition a batch came from."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for event in events:
        message = event.message
        key = (message.topic, message.partition)
        first, _ = ranges.get(key, (message.offset, message.offset))
        ranges[key] = (first, message.offset)
    return ", ".join(f"{t}[{p}]@{a}..{b}" for (t, p), (a, b) in ranges.items())


def run_enforcer(settings: Settings, bootstrap_servers: str, *, loglevel: str = "warning") -> None:
    """Run the enforcer worker until it is stopped (SIGINT/SIGTERM); blocks."""
    enforcement = build_enforcement(settings)
    exporter = serve_enforcer_metrics(settings, enforcement)  # loopback /metrics for the console
    app = build_enforcer_app(settings, bootstrap_servers, enforcement)
    for noisy in ("aiokafka", "faust", "mode"):
        # Under a faust worker the root logger stays at DEBUG; building and discarding the
        # libraries' debug records on the send path cost ~11% throughput (DESIGN.md).
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # a terminal spinner only writes escape codes into the worker's log
    try:
        worker.execute_from_commandline()
    finally:
        exporter.close()
