"""Retry parked signals: once the policy decides again, send them back through the enforcer.

The enforcer parks a signal on ``signals.parked`` (original bytes; headers name the source
topic, partition, offset and when it failed) when its policy could not be evaluated. Here each
parked signal is decoded and its decision tried with the policy now in force; when that works,
its original bytes go back onto the source topic (same key), so the enforcer processes it like
any signal and delivers it with stable delivery ids. A parked signal that still cannot be decided
stays parked for a later retry. Which parked records were retried is kept in a small SQLite
state, keyed on partition, offset, key and failure time (so a broker that lost its topics and
reuses offsets does not hide new parked records), and a retry is never repeated.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from signalhub.broker.clients import KafkaConnection, new_producer
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.errors import BrokerError, PolicyError, SignalhubError
from signalhub.policy.decision import build_input
from signalhub.policy.engine import PolicyEngine
from signalhub.schema.codec import decode
from signalhub.schema.registry import SchemaRegistry, policy_attributes
from signalhub.subscriptions import Subscription
from signalhub.wire import FAILED_AT_HEADER, PARKED_TOPIC, SOURCE_TOPIC_HEADER, header

__all__ = ["RetryReport", "RetryState", "retry_parked"]


@dataclass
class RetryReport:
    """What one retry run did, by parked record."""

    republished: list[str] = field(default_factory=list)  # signal ids sent back
    still_failing: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    already_retried: int = 0


class RetryState:
    """The parked records already sent back (SQLite under the state directory)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS retried (identity TEXT PRIMARY KEY,"
                " partition INTEGER NOT NULL, offset INTEGER NOT NULL,"
                " policy_version TEXT NOT NULL, retried_at TEXT NOT NULL)"
            )

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> RetryState:
        return cls(state_dir / "parked_retries.sqlite")

    def done(self, identity: str) -> bool:
        with closing(sqlite3.connect(self._path)) as db:
            row = db.execute("SELECT 1 FROM retried WHERE identity = ?", (identity,)).fetchone()
        return row is not None

    def mark(self, identity: str, partition: int, offset: int, version: str) -> None:
        with closing(sqlite3.connect(self._path)) as db, db:
            db.execute(
                "INSERT OR IGNORE INTO retried VALUES (?, ?, ?, ?, ?)",
                (identity, partition, offset, version, datetime.now(UTC).isoformat()),
            )


def _identity(record: Any) -> str:
    """Partition, offset, key and failure time: unique even when a broker reuses offsets."""
    failed_at = header(record, FAILED_AT_HEADER) or ""
    raw = f"{record.partition}\0{record.offset}\0{(record.key or b'').hex()}\0{failed_at}"
    return hashlib.sha256(raw.encode()).hexdigest()


def retry_parked(
    bootstrap_servers: str,
    registry: SchemaRegistry,
    subscriptions: Mapping[str, Sequence[Subscription]],
    policy: PolicyEngine,
    state: RetryState,
    today: date,
    *,
    idle_ms: int = 1000,
) -> RetryReport:
    """Send back every parked signal the policy in force can now decide; see the module doc."""
    report = RetryReport()
    consumer = open_consumer(bootstrap_servers, client_id="signalhub-retry-parked")
    try:
        producer = new_producer(
            KafkaConnection(bootstrap_servers), acks="all", client_id="signalhub-retry-parked"
        )
    except Exception as exc:
        consumer.close()
        raise BrokerError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc
    try:
        assign_topic(consumer, PARKED_TOPIC)
        for record in drain(consumer, idle_ms=idle_ms):
            where = f"{PARKED_TOPIC}[{record.partition}]@{record.offset}"
            identity = _identity(record)
            if state.done(identity):
                report.already_retried += 1
                continue
            source = header(record, SOURCE_TOPIC_HEADER)
            problem = _still_failing(registry, subscriptions, policy, record.value, today)
            if source is None:
                problem = f"no {SOURCE_TOPIC_HEADER} header"
            if problem is not None:
                report.still_failing.append((where, problem))
                continue
            try:
                producer.send(source, key=record.key, value=record.value).get(timeout=30)
            except Exception as exc:
                raise BrokerError(
                    f"could not send {where} back to {source}: {exc} — run retry-parked again"
                ) from exc
            state.mark(identity, record.partition, record.offset, policy.version)
            report.republished.append((record.key or b"").decode("utf-8", "replace"))
    finally:
        producer.close()
        consumer.close()
    return report


def _still_failing(
    registry: SchemaRegistry,
    subscriptions: Mapping[str, Sequence[Subscription]],
    policy: PolicyEngine,
    value: bytes | None,
    today: date,
) -> str | None:
    """Why the policy in force still cannot decide this signal, or None when it can."""
    try:
        _, signal = decode(registry, value or b"")
        signal_type = signal["envelope"]["signal_type"]
        schema = registry.signal(signal_type)
        subs = [s.policy_view() for s in subscriptions.get(signal_type, ()) if s.active]
        policy_input = build_input(
            signal_type,
            signal["envelope"]["source_agency"],
            policy_attributes(schema, signal["payload"], today),
            subs,
            today,
        )
        decisions = policy.decide(policy_input)
    except PolicyError as exc:
        return str(exc)
    except (SignalhubError, KeyError, TypeError) as exc:
        return f"cannot be decoded: {exc}"
    missing = [s["id"] for s in subs if s["id"] not in decisions]
    return f"no decision for {', '.join(missing)}" if missing else None
