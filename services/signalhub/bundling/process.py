"""``signalhub bundler``: the bundler as one stream-processing process (the Kafka edge).

It reads every raw ``signals.<type>`` topic (not its own ``signals.casework_alert``) with its own
consumer group, hands each batch to :class:`~signalhub.bundling.core.Bundler`, publishes the
alerts the batch produced, and only then commits the offsets past the batch:

    poll -> SQLite transaction (state + alert outbox) -> publish outbox, flush -> mark sent
         -> commit offsets

A crash anywhere re-reads at most the last batch (idempotent on ``signal_id``) and re-publishes
at most the alerts not yet marked sent (same signal id). A state file it cannot write ends the
process (exit code 74, one log line) before the offsets are committed. Partitions are assigned
by the process itself, positioned at the group's committed offsets (no group join: one bundler
per hub).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from signalhub.broker.admin import create_topics
from signalhub.broker.reader import assign_topics, open_consumer
from signalhub.bundling.core import ALERT_TYPE, Bundler
from signalhub.bundling.rules import BundlingPolicy
from signalhub.bundling.store import BundleStore, store_path
from signalhub.config import Settings
from signalhub.connector.publisher import KafkaPublisher
from signalhub.enforcer.outputs import SourceRecord
from signalhub.errors import StateWriteError
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.keys import load_key_ring
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema.registry import SchemaRegistry
from signalhub.shutdown import stop_on_signals

__all__ = ["BATCH_SIZE", "bundler_topics", "run_bundler"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
_POLL_MS = 200


def bundler_topics(registry: SchemaRegistry) -> list[str]:
    """The raw signal topics the bundler reads: every type except its own alerts."""
    return [registry.signal(t).topic for t in registry.signal_types() if t != ALERT_TYPE]


def run_bundler(
    settings: Settings, bootstrap_servers: str, stop: threading.Event | None = None
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``); blocks.

    When its state file cannot be written (:class:`StateWriteError`: disk full, read-only, I/O
    error) it logs one line and exits with the error's exit code (74), the batch uncommitted, so
    that the supervisor restarts it and the batch is read again.
    """
    try:
        _run(settings, bootstrap_servers, stop or stop_on_signals())
    except StateWriteError as exc:
        logger.critical("%s; exiting so the supervisor restarts the bundler", exc)
        raise SystemExit(exc.exit_code) from None


def _run(settings: Settings, bootstrap_servers: str, stop: threading.Event) -> None:
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    topics = bundler_topics(registry)
    create_topics(bootstrap_servers, topics, partitions=settings.partitions)
    create_topics(bootstrap_servers, [registry.signal(ALERT_TYPE).topic], settings.partitions)
    ring = load_key_ring(settings)
    engine = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
    store = BundleStore(store_path(settings.state_dir))
    publisher = KafkaPublisher(bootstrap_servers)
    consumer = open_consumer(
        bootstrap_servers,
        group_id=settings.bundler_group,
        client_id="signalhub-bundler",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_poll_records=BATCH_SIZE,
    )
    bundler = Bundler(
        registry, store, BundlingPolicy(engine), Pseudonymiser(ring.key(), ring.current)
    )
    try:
        _publish(bundler, store, publisher, store.unsent_alerts())  # left over from a crash
        assign_topics(consumer, topics, from_committed=True)
        logger.info("bundler reading %d topics (policy %s)", len(topics), engine.version)
        while not stop.is_set():
            batch = consumer.poll(timeout_ms=_POLL_MS, max_records=BATCH_SIZE)
            messages = [m for records in batch.values() for m in records]
            if not messages:
                continue
            records = [
                SourceRecord(m.topic, m.partition, m.offset, m.key, m.value) for m in messages
            ]
            alerts = bundler.process(records)
            _publish(bundler, store, publisher, alerts)
            consumer.commit(_offsets(messages))
            logger.info(
                "%d signals read, %d alerts published, %d duplicates, %d undecodable",
                len(messages),
                len(alerts),
                bundler.stats["duplicates"],
                bundler.stats["undecodable"],
            )
    finally:
        consumer.close()
        publisher.close()
        store.close()
        engine.close()


def _publish(bundler: Bundler, store: BundleStore, publisher: KafkaPublisher, alerts: Any) -> None:
    if not alerts:
        return
    for output in bundler.outputs(alerts):
        publisher.publish(output.topic, output.key or b"", output.value)
    publisher.flush()
    store.mark_sent(list(alerts))


def _offsets(messages: list[Any]) -> dict[TopicPartition, OffsetAndMetadata]:
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for message in messages:
        tp = TopicPartition(message.topic, message.partition)
        offsets[tp] = OffsetAndMetadata(message.offset + 1, "", -1)
    return offsets
