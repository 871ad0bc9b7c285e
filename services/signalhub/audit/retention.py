"""Retention: remove what has expired, from the audit store and the hub's topics, and say so.

Periods come from configuration (docs/audit.md): ``SIGNALHUB_AUDIT_RETENTION_DAYS`` for the audit
store, ``SIGNALHUB_SIGNAL_RETENTION_DAYS`` for ``signals.*`` (and the DLQ and parked topics,
which hold raw signals too), and per subscription ``retention_days`` in
config/subscriptions.toml for its deliveries (default ``SIGNALHUB_DELIVERY_RETENTION_DAYS``).

A run first trims the topics, then removes expired audit rows in the same transaction as it
appends a chained ``retention`` entry recording what went: counts, time spans, per topic and
partition the offsets, and per removed run of rows its sequence range and the hash of its last
row (the anchor that keeps the chain verifiable, see :mod:`signalhub.audit.chain`).

Kafka records can only be removed as a prefix of a partition (DeleteRecords). A partition is
trimmed up to its first record that has not expired, so nothing unexpired is ever removed; a
younger record in front of older ones holds them until it expires too. Brokers without
DeleteRecords (tansu 0.6.0 drops the connection) are reported as ``unsupported`` and the
expired counts are still recorded.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.errors import KafkaConnectionError, KafkaError, UnsupportedVersionError

from signalhub.audit.chain import RemovedRange
from signalhub.audit.store import AuditStore
from signalhub.broker.clients import KafkaConnection, new_admin
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.config import Settings
from signalhub.errors import BrokerError
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, load_subscriptions
from signalhub.wire import DLQ_TOPIC, PARKED_TOPIC, SIGNAL_TYPE_HEADER, deliveries_topic, header

__all__ = [
    "KafkaRecordDeleter",
    "RecordDeleter",
    "RetentionPlan",
    "RetentionReport",
    "TopicOutcome",
    "run_retention",
]

logger = logging.getLogger(__name__)

_UNSUPPORTED = (
    "the broker does not implement DeleteRecords (tansu 0.6.0 drops the connection) — the "
    "expired records stay on the topic; against Apache Kafka this works, or set retention.ms "
    "on the topic"
)


@dataclass(frozen=True)
class RetentionPlan:
    """The periods one run applies, in days."""

    audit_days: int
    signal_days: int
    delivery_days: int
    signal_topics: tuple[str, ...]
    subscriptions: tuple[Subscription, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPlan:
        """The configured periods, topics and subscriptions."""
        registry = SchemaRegistry.from_dir(settings.schemas_dir)
        signal_types = registry.signal_types()
        return cls(
            audit_days=settings.audit_retention_days,
            signal_days=settings.signal_retention_days,
            delivery_days=settings.delivery_retention_days,
            signal_topics=tuple(registry.signal(t).topic for t in signal_types),
            subscriptions=tuple(load_subscriptions(settings.subscriptions_file, signal_types)),
        )

    def topic_rules(self) -> list[tuple[str, Callable[[Any], int]]]:
        """(topic, days-for-this-record) for every topic the hub trims."""
        rules: list[tuple[str, Callable[[Any], int]]] = [
            (topic, lambda _message: self.signal_days)
            for topic in (*self.signal_topics, DLQ_TOPIC, PARKED_TOPIC)
        ]
        per_type: dict[tuple[str, str], int] = {}
        for subscription in self.subscriptions:
            for signal_type in subscription.signal_types:
                days = subscription.retention_days or self.delivery_days
                per_type.setdefault((subscription.subscriber, signal_type), days)
        for subscriber in sorted({s.subscriber for s in self.subscriptions}):

            def days_for(message: Any, subscriber: str = subscriber) -> int:
                signal_type = header(message, SIGNAL_TYPE_HEADER) or ""
                return per_type.get((subscriber, signal_type), self.delivery_days)

            rules.append((deliveries_topic(subscriber), days_for))
        return rules


@dataclass
class TopicOutcome:
    """Retention of one topic partition."""

    topic: str
    partition: int
    records: int
    expired: int
    delete_before: int | None
    status: str  # nothing_expired | deleted | unsupported | failed
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "records_read": self.records,
            "expired": self.expired,
            "delete_before_offset": self.delete_before,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass
class RetentionReport:
    """What a run removed (or could not), as recorded in its retention entry."""

    entry_seq: int
    ran_at: datetime
    audit_removed: int
    audit_ranges: list[RemovedRange]
    topics: list[TopicOutcome] = field(default_factory=list)


class RecordDeleter(Protocol):
    """Removes a prefix of partitions; returns per partition (status, detail)."""

    def delete(
        self, before: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, tuple[str, str]]: ...


class KafkaRecordDeleter:
    """DeleteRecords through the Kafka admin API; an unsupporting broker is reported, not fatal."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self._unsupported = False

    def delete(self, before: Mapping[TopicPartition, int]) -> dict[TopicPartition, tuple[str, str]]:
        outcome: dict[TopicPartition, tuple[str, str]] = {}
        if not before:
            return outcome
        try:
            admin = new_admin(KafkaConnection(self._bootstrap), client_id="signalhub-retention")
        except KafkaError as exc:
            raise BrokerError(f"cannot reach Kafka at {self._bootstrap}: {exc}") from exc
        try:
            for tp, offset in before.items():
                if self._unsupported:
                    outcome[tp] = ("unsupported", _UNSUPPORTED)
                    continue
                try:
                    admin.delete_records({tp: offset}, timeout_ms=10_000)
                    outcome[tp] = ("deleted", f"records before offset {offset} deleted")
                except (KafkaConnectionError, UnsupportedVersionError):
                    self._unsupported = True
                    outcome[tp] = ("unsupported", _UNSUPPORTED)
                except KafkaError as exc:
                    outcome[tp] = ("failed", f"{type(exc).__name__}: {exc}")
        finally:
            admin.close()
        return outcome


def run_retention(
    store: AuditStore,
    plan: RetentionPlan,
    *,
    now: datetime,
    bootstrap_servers: str | None,
    deleter: RecordDeleter | None = None,
    idle_ms: int = 1000,
) -> RetentionReport:
    """One retention run at ``now`` (the injected clock); see the module docstring."""
    topics: list[TopicOutcome] = []
    if bootstrap_servers is not None:
        topics = _trim_topics(
            plan, now, bootstrap_servers, deleter or KafkaRecordDeleter(bootstrap_servers), idle_ms
        )
    cutoff = now - timedelta(days=plan.audit_days)
    run_id = f"retention:{uuid.uuid4()}"

    def entry(
        ranges: list[RemovedRange], count: int, span: tuple[int, int] | None
    ) -> dict[str, Any]:
        return {
            "retention_id": run_id,
            "ran_at": _iso(now),
            "audit_store": {
                "retention_days": plan.audit_days,
                "cutoff": _iso(cutoff),
                "removed": count,
                "removed_ranges": [r.as_json() for r in ranges],
                "first_decided_at": _iso_ms(span[0]) if span else None,
                "last_decided_at": _iso_ms(span[1]) if span else None,
            },
            "topics": [outcome.as_json() for outcome in topics],
        }

    seq, ranges = store.remove_and_record(int(cutoff.timestamp() * 1000), run_id, entry)
    removed = sum(r.last_seq - r.first_seq + 1 for r in ranges)
    logger.info(
        "retention: %d audit rows removed in %d ranges, entry seq %d", removed, len(ranges), seq
    )
    return RetentionReport(seq, now, removed, ranges, topics)


def _trim_topics(
    plan: RetentionPlan,
    now: datetime,
    bootstrap_servers: str,
    deleter: RecordDeleter,
    idle_ms: int,
) -> list[TopicOutcome]:
    outcomes: list[TopicOutcome] = []
    before: dict[TopicPartition, int] = {}
    for topic, days_for in plan.topic_rules():
        for outcome in _scan(topic, days_for, now, bootstrap_servers, idle_ms):
            outcomes.append(outcome)
            if outcome.delete_before is not None:
                before[TopicPartition(outcome.topic, outcome.partition)] = outcome.delete_before
    results = deleter.delete(before)
    for outcome in outcomes:
        result = results.get(TopicPartition(outcome.topic, outcome.partition))
        if result is not None:
            outcome.status, outcome.detail = result
    return outcomes


def _scan(
    topic: str,
    days_for: Callable[[Any], int],
    now: datetime,
    bootstrap_servers: str,
    idle_ms: int,
) -> list[TopicOutcome]:
    """Read a topic (to the end by idling) and find each partition's expired prefix."""
    consumer = open_consumer(bootstrap_servers, client_id="signalhub-retention")
    now_ms = int(now.timestamp() * 1000)
    state: dict[int, TopicOutcome] = {}
    blocked: set[int] = set()
    try:
        for tp in assign_topic(consumer, topic):
            state[tp.partition] = TopicOutcome(topic, tp.partition, 0, 0, None, "nothing_expired")
        if not state:
            return []
        for message in drain(consumer, idle_ms=idle_ms):
            outcome = state[message.partition]
            outcome.records += 1
            if message.partition in blocked:
                continue
            expires_ms = message.timestamp + days_for(message) * 86_400_000
            if message.timestamp >= 0 and expires_ms <= now_ms:
                outcome.expired += 1
                outcome.delete_before = message.offset + 1
            else:
                blocked.add(message.partition)
    finally:
        consumer.close()
    return [state[p] for p in sorted(state)]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_ms(millis: int) -> str:
    return _iso(datetime.fromtimestamp(millis / 1000, tz=UTC))
