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

:func:`run_audit_ingest` is the audit-ingest role: it opens the store in the thread that uses it
(a SQLite connection belongs to its thread), and outlives outages of the store and of Kafka by
closing both, backing off and resuming from the committed offsets. It reports its progress in a
status file (:mod:`signalhub.audit.health`) that readiness reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from signalhub.audit.backends import open_store
from signalhub.audit.health import (
    BROKER_UNREACHABLE,
    INGESTING,
    STORE_UNREACHABLE,
    IngestStatus,
)
from signalhub.audit.record import decisions_in, register_audit_schemas
from signalhub.audit.store import AuditStore
from signalhub.broker.reader import assign_topics, drain, open_consumer
from signalhub.config import Settings
from signalhub.errors import BrokerError, RecordError, StoreUnavailableError, UnknownSchemaError
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import Record
from signalhub.wire import AUDIT_TOPIC

__all__ = ["AuditIngestor", "IngestReport", "audit_registry", "run_audit_ingest"]

logger = logging.getLogger(__name__)

#: Records appended (and committed) per store transaction at most.
BATCH_SIZE = 500
#: A batch is appended once its first record waited this long, so that a steady trickle of
#: records (which never lets the topic go idle) is stored within a second, not per 500.
BATCH_MAX_AGE_S = 0.5
#: How long a Kafka request (bootstrap, committed offsets, commit) may take before the broker
#: counts as unreachable.
BROKER_TIMEOUT_MS = 5000
#: Backoff after an outage: the first wait, doubled after every failed attempt up to the last.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
#: While idle, the role touches the store and rewrites its status file this often.
HEARTBEAT_S = 5.0


@dataclass
class IngestReport:
    """What one ingest run did: topic records read (``undecodable`` among them), and what
    became of the decisions they held, ``decisions == inserted + duplicates``."""

    read: int = 0
    decisions: int = 0
    inserted: int = 0
    duplicates: int = 0
    undecodable: list[str] = field(default_factory=list)
    #: ``topic[partition]`` -> the next offset to ingest (the group's committed offset).
    offsets: dict[str, int] = field(default_factory=dict)


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
        on_idle: Callable[[IngestReport], None] | None = None,
        report: IngestReport | None = None,
    ) -> IngestReport:
        """Ingest until the topic stays idle (or, with ``follow``, until ``stop`` is set).

        ``replay`` starts at the beginning of the topic instead of the group's committed offsets.
        Following, each idle round asks the broker for the committed offset (a silent broker
        only makes polls come back empty) and then calls ``on_idle``, once the topic's
        partitions are assigned. ``report`` continues an
        earlier run's counts. A lost broker raises :class:`BrokerError`; nothing read after the
        last commit counts as ingested.
        """
        report = IngestReport() if report is None else report
        stop = threading.Event() if stop is None else stop
        consumer = open_consumer(
            self._bootstrap,
            group_id=self._group,
            client_id="signalhub-audit-ingest",
            bootstrap_timeout_ms=BROKER_TIMEOUT_MS,
        )
        try:
            assigned = self._assign(consumer, report, replay)
            while True:
                if assigned:
                    self._drain(consumer, report, on_batch)
                if not follow or stop.is_set():
                    return report
                if assigned:
                    consumer.committed(assigned[0], timeout_ms=BROKER_TIMEOUT_MS)
                elif stop.wait(self._idle_ms / 1000):
                    return report
                else:
                    assigned = self._assign(consumer, report, replay)
                # Only a consumer that reached the broker (its partitions assigned) may report
                # health: kafka-python connects lazily, so "no error yet" proves nothing.
                if on_idle is not None and assigned:
                    on_idle(report)
        except KafkaError as exc:
            raise BrokerError(
                f"lost Kafka at {self._bootstrap} ({exc}) — is the broker running?"
            ) from exc
        finally:
            consumer.close(autocommit=False)

    def _assign(self, consumer: Any, report: IngestReport, replay: bool) -> list[TopicPartition]:
        assigned = assign_topics(
            consumer, [self._topic], from_committed=not replay, timeout_ms=BROKER_TIMEOUT_MS
        )
        for tp in assigned:
            position = consumer.position(tp, timeout_ms=BROKER_TIMEOUT_MS)
            report.offsets[f"{tp.topic}[{tp.partition}]"] = int(position)
        return assigned

    def _drain(
        self,
        consumer: Any,
        report: IngestReport,
        on_batch: Callable[[IngestReport], None] | None,
    ) -> None:
        batch: list[Any] = []
        started = 0.0
        for message in drain(consumer, idle_ms=self._idle_ms):
            if not batch:
                started = time.monotonic()
            batch.append(message)
            if len(batch) >= BATCH_SIZE or time.monotonic() - started >= BATCH_MAX_AGE_S:
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
        consumer.commit(offsets, timeout_ms=BROKER_TIMEOUT_MS)
        for tp, committed in offsets.items():
            report.offsets[f"{tp.topic}[{tp.partition}]"] = committed.offset
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


def run_audit_ingest(
    settings: Settings,
    bootstrap_servers: str,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[IngestReport], None] | None = None,
) -> None:
    """The audit-ingest role: follow the ``audit`` topic into the store until ``stop`` is set.

    Opens the store (and the consumer) here, in the thread that uses them. When the store or
    Kafka cannot be reached it logs one warning per outage, closes both, waits (0.5 s doubling
    to 10 s), opens both again and resumes from the group's committed offsets: a batch appended
    but not committed is read again and skipped by the store. A setting that can never work
    (:class:`~signalhub.errors.ConfigError`) and any unexpected error raise, so the role exits
    non-zero. ``on_batch`` gets the role's running totals after every batch.
    """
    stop = threading.Event() if stop is None else stop
    registry = audit_registry(settings)
    status = IngestStatus(settings.state_dir)
    retry = _Retry()
    report = IngestReport()
    while not stop.is_set():
        try:
            with open_store(settings) as store:
                _Session(store, status, retry, on_batch).run(
                    AuditIngestor(store, registry, bootstrap_servers, group=settings.audit_group),
                    report,
                    stop,
                )
            return
        except StoreUnavailableError as exc:
            status.update(STORE_UNREACHABLE, str(exc), store_writable=False)
            delay = retry.failed("audit store unreachable", exc)
        except BrokerError as exc:
            status.update(BROKER_UNREACHABLE, str(exc))
            delay = retry.failed("Kafka unreachable", exc)
        stop.wait(delay)


class _Session:
    """One connection's worth of ingest: keeps the status file and the retry state current."""

    def __init__(
        self,
        store: AuditStore,
        status: IngestStatus,
        retry: _Retry,
        on_batch: Callable[[IngestReport], None] | None,
    ) -> None:
        self._store = store
        self._status = status
        self._retry = retry
        self._on_batch = on_batch
        self._touched: float | None = None  # the first idle round writes the status

    def run(self, ingestor: AuditIngestor, report: IngestReport, stop: threading.Event) -> None:
        ingestor.run(
            follow=True, stop=stop, report=report, on_batch=self._batch, on_idle=self._idle
        )

    def _batch(self, report: IngestReport) -> None:
        self._touched = time.monotonic()
        self._healthy(report)
        if self._on_batch is not None:
            self._on_batch(report)

    def _idle(self, report: IngestReport) -> None:
        """Between polls: notice a store that went away even when no records arrive."""
        recent = self._touched is not None and time.monotonic() - self._touched < HEARTBEAT_S
        if recent and self._status.state == INGESTING:
            return
        self._store.head()
        self._touched = time.monotonic()
        self._healthy(report)

    def _healthy(self, report: IngestReport) -> None:
        self._retry.recovered()
        self._status.ingested_offset = dict(report.offsets)
        self._status.update(
            INGESTING,
            f"{report.inserted} decisions stored, {report.duplicates} already held",
            store_writable=True,
        )


class _Retry:
    """Backoff between attempts, and one warning per outage (not one per attempt)."""

    def __init__(self) -> None:
        self._delay = RETRY_FIRST_S
        self._outage: str | None = None
        self._since = 0.0

    def failed(self, what: str, cause: BaseException) -> float:
        """Log the outage's first failure, and return how long to wait before the next try."""
        delay = self._delay
        if what != self._outage:
            logger.warning("%s: %s; retrying in %.1f s", what, cause, delay)
            if self._outage is None:
                self._since = time.monotonic()
            self._outage = what
        else:
            logger.debug("%s: %s; retrying in %.1f s", what, cause, delay)
        self._delay = min(self._delay * 2, RETRY_MAX_S)
        return delay

    def recovered(self) -> None:
        if self._outage is not None:
            logger.info(
                "audit ingest resumed after %.1f s (%s)",
                time.monotonic() - self._since,
                self._outage,
            )
        self._outage = None
        self._delay = RETRY_FIRST_S
