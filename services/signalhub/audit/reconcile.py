"""Completeness: every decision has exactly one audit record, every delivery its allow record.

Four checks, each reported as a :class:`Gap` that says where to look:

- ``not_ingested``: a decision on the ``audit`` topic that the store does not hold (run
  ``signalhub audit ingest``);
- ``missing_decision``: a signal in the store without a decision for one of the subscriptions
  configured for its type (or without the "no subscription" record when there are none);
- ``delivery_without_audit`` / ``delivery_mismatch``: a record on ``deliveries.<subscriber>``
  whose ``delivery_id`` has no allow record in the store, or one for another subscriber;
- ``audit_without_delivery``: an allow record whose delivery is not on the subscriber's topic
  (only within the delivery retention period: older deliveries may have been removed).

Topics are read to the end by idling (:func:`signalhub.broker.reader.drain`), never up to the
broker's end offsets. Reconciliation reads the delivery topics' headers and keys only, never a
delivered payload, and never the raw signal topics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from signalhub.audit.record import NO_SUBSCRIPTION, decisions_in
from signalhub.audit.store import DECISION, AuditStore
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.errors import RecordError, UnknownSchemaError
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, by_signal_type
from signalhub.wire import (
    AUDIT_TOPIC,
    DELIVERY_ID_HEADER,
    deliveries_topic,
    header,
    subscriber_of,
)

__all__ = ["Gap", "ReconcileReport", "reconcile"]


@dataclass(frozen=True)
class Gap:
    """One thing that does not add up, and where."""

    kind: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.detail}"


@dataclass
class ReconcileReport:
    """What was compared, and every gap found."""

    #: decisions found on the audit topic (an audit entry holds all of one signal's)
    audit_on_topic: int = 0
    decisions_in_store: int = 0
    signals: int = 0
    deliveries: int = 0
    duplicate_deliveries: int = 0
    gaps: list[Gap] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.gaps

    def kinds(self) -> Counter[str]:
        return Counter(gap.kind for gap in self.gaps)


def reconcile(
    store: AuditStore,
    registry: SchemaRegistry,
    bootstrap_servers: str,
    subscriptions: Sequence[Subscription],
    *,
    now: datetime,
    delivery_retention_days: int,
    audit_topic: str = AUDIT_TOPIC,
    idle_ms: int = 1000,
) -> ReconcileReport:
    """Compare the audit topic, the store and the delivery topics; see the module docstring."""
    report = ReconcileReport()
    stored = [row.record for row in store.select("kind = ?", [DECISION])]
    report.decisions_in_store = len(stored)
    _check_ingested(report, store, registry, bootstrap_servers, audit_topic, idle_ms)
    _check_decisions(report, stored, by_signal_type(subscriptions))
    allowed = {r["delivery_id"]: r for r in stored if r["outcome"] == "allow" and r["delivery_id"]}
    delivered = _check_deliveries(report, allowed, bootstrap_servers, subscriptions, idle_ms)
    retention = {s.id: s.retention_days for s in subscriptions if s.retention_days}
    for delivery_id, record in sorted(allowed.items()):
        if delivery_id in delivered:
            continue
        days = retention.get(record["subscription_id"], delivery_retention_days)
        decided = datetime.fromisoformat(record["decided_at"].replace("Z", "+00:00"))
        if decided < now - timedelta(days=days):
            continue  # retention may have removed the delivery
        report.gaps.append(
            Gap(
                "audit_without_delivery",
                deliveries_topic(record["subscriber"]),
                f"decision {record['decision_id']} allowed delivery {delivery_id} "
                f"(signal {record['signal_id']}), which is not on the topic",
            )
        )
    return report


def _check_ingested(
    report: ReconcileReport,
    store: AuditStore,
    registry: SchemaRegistry,
    bootstrap_servers: str,
    topic: str,
    idle_ms: int,
) -> None:
    in_store = store.entry_ids()
    seen: set[str] = set()
    consumer = open_consumer(bootstrap_servers, client_id="signalhub-audit-reconcile")
    try:
        if not assign_topic(consumer, topic):
            return
        for message in drain(consumer, idle_ms=idle_ms):
            where = f"{message.topic}[{message.partition}]@{message.offset}"
            try:
                _, record = codec.decode(registry, bytes(message.value or b""))
                decisions = decisions_in(record)
            except (RecordError, UnknownSchemaError) as exc:
                report.gaps.append(Gap("undecodable_audit", where, str(exc)))
                continue
            for decision in decisions:
                report.audit_on_topic += 1
                decision_id = str(decision["decision_id"])
                if decision_id not in in_store and decision_id not in seen:
                    report.gaps.append(
                        Gap(
                            "not_ingested",
                            where,
                            f"decision {decision_id} is not in the audit store — "
                            "run `signalhub audit ingest`",
                        )
                    )
                seen.add(decision_id)
    finally:
        consumer.close()


def _check_decisions(
    report: ReconcileReport,
    stored: list[dict[str, Any]],
    configured: Mapping[str, Sequence[Subscription]],
) -> None:
    by_signal: dict[str, list[dict[str, Any]]] = {}
    for record in stored:
        by_signal.setdefault(record["signal_id"], []).append(record)
    report.signals = len(by_signal)
    for signal_id, records in sorted(by_signal.items()):
        signal_type = records[0]["signal_type"]
        expected = {s.id for s in configured.get(signal_type, ())} or {NO_SUBSCRIPTION}
        decided = Counter(record["subscription_id"] for record in records)
        for missing in sorted(expected - set(decided)):
            report.gaps.append(
                Gap(
                    "missing_decision",
                    f"signal {signal_id}",
                    f"no audit record for subscription {missing} ({signal_type})",
                )
            )
        for subscription_id, count in sorted(decided.items()):
            if count > 1:
                report.gaps.append(
                    Gap(
                        "repeated_decision",
                        f"signal {signal_id}",
                        f"{count} decisions for subscription {subscription_id} "
                        "(under different policy versions)",
                    )
                )


def _check_deliveries(
    report: ReconcileReport,
    allowed: Mapping[str, dict[str, Any]],
    bootstrap_servers: str,
    subscriptions: Sequence[Subscription],
    idle_ms: int,
) -> set[str]:
    """Every delivery record against its allow record; returns the delivery ids found."""
    delivered: set[str] = set()
    consumer = open_consumer(bootstrap_servers, client_id="signalhub-audit-reconcile")
    try:
        partitions = []
        for subscriber in sorted({s.subscriber for s in subscriptions}):
            partitions += assign_topic(consumer, deliveries_topic(subscriber))
        if not partitions:
            return delivered
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        for message in drain(consumer, idle_ms=idle_ms):
            where = f"{message.topic}[{message.partition}]@{message.offset}"
            key = bytes(message.key).decode("utf-8", "replace") if message.key else None
            delivery_id = header(message, DELIVERY_ID_HEADER) or key or ""
            if delivery_id in delivered:
                report.duplicate_deliveries += 1
                continue
            delivered.add(delivery_id)
            report.deliveries += 1
            record = allowed.get(delivery_id)
            receiver = subscriber_of(message.topic)
            if record is None:
                report.gaps.append(
                    Gap(
                        "delivery_without_audit",
                        where,
                        f"delivery {delivery_id} has no allow record in the audit store",
                    )
                )
            elif record["subscriber"] != receiver:
                report.gaps.append(
                    Gap(
                        "delivery_mismatch",
                        where,
                        f"delivery {delivery_id} was allowed for {record['subscriber']}, "
                        f"not {receiver}",
                    )
                )
    finally:
        consumer.close()
    return delivered
