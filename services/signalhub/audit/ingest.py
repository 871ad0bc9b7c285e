"""Consume the ``audit`` topic into the audit store: at-least-once, idempotent, resumable.

Records are read in batches, each expanded into its decisions (an audit entry holds all of one
signal's), appended to the store in one transaction, and only then is the consumer group's offset
committed. A crash between the two re-reads the batch, and the store
skips what it already holds (same ``decision_id``), so nothing is lost and nothing is doubled;
reading the whole topic again (``replay``) leaves the store as it was.

The consumer assigns the topic's partitions itself and keeps its position as the committed
offsets of ``SIGNALHUB_AUDIT_GROUP``: the audit topic has one partition, and a group join on the
embedded broker costs about half the session timeout. Two ingesters at once are harmless (the
store serialises appends and de-duplicates), merely wasteful.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from signalhub.audit.record import decisions_in, register_audit_schemas
from signalhub.audit.store import AuditStore
from signalhub.broker.reader import assign_topics, drain, open_consumer
from signalhub.config import Settings
from signalhub.errors import RecordError, UnknownSchemaError
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import Record
from signalhub.wire import AUDIT_TOPIC

__all__ = ["AuditIngestor", "IngestReport", "audit_registry"]

logger = logging.getLogger(__name__)

#: Records appended (and committed) per store transaction.
BATCH_SIZE = 500


@dataclass
class IngestReport:
    """What one ingest run did: topic records read (``undecodable`` among them), and what
    became of the decisions they held, ``decisions == inserted + duplicates``."""

    read: int = 0
    decisions: int = 0
    inserted: int = 0
    duplicates: int = 0
    undecodable: list[str] = field(default_factory=list)


def audit_registry(settings: Settings) -> SchemaRegistry:
    """A schema registry that knows the audit topic's schemas (for decoding the topic)."""
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    register_audit_schemas(registry, settings.schemas_dir)
    return registry


class AuditIngestor:
    """Moves audit records from a topic into an :class:`AuditStore`."""

    def __init__(
        self,
        store: AuditStore,
        registry: SchemaRegistry,
        bootstrap_servers: str,
        *,
        group: str,
        topic: str = AUDIT_TOPIC,
        idle_ms: int = 1000,
    ) -> None:
        self._store = store
        self._registry = registry
        self._bootstrap = bootstrap_servers
        self._group = group
        self._topic = topic
        self._idle_ms = idle_ms

    def run(
        self,
        *,
        follow: bool = False,
        replay: bool = False,
        stop: threading.Event | None = None,
        on_batch: Callable[[IngestReport], None] | None = None,
    ) -> IngestReport:
        """Ingest until the topic stays idle (or, with ``follow``, until ``stop`` is set).

        ``replay`` starts at the beginning of the topic instead of the group's committed offsets.
        """
        report = IngestReport()
        consumer = open_consumer(
            self._bootstrap, group_id=self._group, client_id="signalhub-audit-ingest"
        )
        try:
            assigned = assign_topics(consumer, [self._topic], from_committed=not replay)
            while True:
                if assigned:
                    self._drain(consumer, report, on_batch)
                if not follow or (stop is not None and stop.is_set()):
                    return report
                if not assigned:
                    if stop is not None and stop.wait(self._idle_ms / 1000):
                        return report
                    assigned = assign_topics(consumer, [self._topic], from_committed=not replay)
        finally:
            consumer.close()

    def _drain(
        self,
        consumer: Any,
        report: IngestReport,
        on_batch: Callable[[IngestReport], None] | None,
    ) -> None:
        batch: list[Any] = []
        for message in drain(consumer, idle_ms=self._idle_ms):
            batch.append(message)
            if len(batch) >= BATCH_SIZE:
                self._flush(consumer, batch, report, on_batch)
                batch = []
        if batch:
            self._flush(consumer, batch, report, on_batch)

    def _flush(
        self,
        consumer: Any,
        messages: list[Any],
        report: IngestReport,
        on_batch: Callable[[IngestReport], None] | None,
    ) -> None:
        """Append the batch, then commit past it: the order that makes this at-least-once."""
        records: list[Record] = []
        for message in messages:
            where = f"{message.topic}[{message.partition}]@{message.offset}"
            try:
                _, record = codec.decode(self._registry, bytes(message.value or b""))
                decisions = decisions_in(record)
            except (RecordError, UnknownSchemaError):
                report.undecodable.append(where)
                continue
            records.extend(decisions)
        result = self._store.append(records)
        report.read += len(messages)
        report.decisions += len(records)
        report.inserted += result.inserted
        report.duplicates += result.duplicates
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for message in messages:
            tp = TopicPartition(message.topic, message.partition)
            offsets[tp] = OffsetAndMetadata(message.offset + 1, "", -1)
        consumer.commit(offsets)
        first, last = messages[0], messages[-1]
        logger.info(
            "%s[%d]@%d..%d: %d audit records, %d decisions, %d new, head seq %d",
            first.topic,
            first.partition,
            first.offset,
            last.offset,
            len(messages),
            len(records),
            result.inserted,
            result.head_seq,
        )
        if on_batch is not None:
            on_batch(report)
