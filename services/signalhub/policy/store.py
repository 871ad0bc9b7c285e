"""Policy versions: what was published, by whom, when, why — and how it reaches the enforcers.

A published version is a :class:`~signalhub.policy.bundle.PolicyBundle`: every file under
``policies/`` (rules, data and tests) with the version hash computed once, when the bundle was
made from the files, over the rules and data. Each publish and each
rollback is an event in a small SQLite store under the state directory (``policy history``), and
the version in force is distributed on the compacted ``policies`` topic under the key
``current``: every enforcer reads the latest record at start-up and follows the topic after
that (:mod:`signalhub.policy.switch`). The topic, not the store, is the authority of what is in
force; the store is the record of who put it there.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signalhub.broker.admin import create_topics
from signalhub.broker.clients import KafkaConnection, new_producer
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.errors import BrokerError, PolicyError
from signalhub.policy.bundle import PolicyBundle
from signalhub.wire import POLICIES_TOPIC

__all__ = [
    "CURRENT_KEY",
    "PolicyEvent",
    "PolicyStore",
    "create_policies_topic",
    "read_current_bundle",
    "send_bundle",
]

CURRENT_KEY = b"current"
#: Only the latest record per key matters, so the topic is compacted (where the broker can).
TOPIC_CONFIG = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class PolicyEvent:
    """One line of the history: a publish or a rollback."""

    seq: int
    version: str
    action: str
    message: str
    author: str
    at: str
    files: dict[str, str] = field(repr=False)

    def bundle(self) -> PolicyBundle:
        return PolicyBundle(self.version, dict(self.files), self.message, self.author, self.at)


class PolicyStore:
    """The history of published versions, in SQLite under the state directory."""

    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS policy_events ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL,"
                " action TEXT NOT NULL, message TEXT NOT NULL, author TEXT NOT NULL,"
                " at TEXT NOT NULL, files TEXT NOT NULL)"
            )

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> PolicyStore:
        return cls(state_dir / "policy_versions.sqlite")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path)

    def record(self, bundle: PolicyBundle, action: str) -> PolicyEvent:
        """Append a publish/rollback event for ``bundle`` (its message, author and time)."""
        with closing(self._connect()) as db, db:
            cursor = db.execute(
                "INSERT INTO policy_events (version, action, message, author, at, files)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    bundle.version,
                    action,
                    bundle.message,
                    bundle.author,
                    bundle.published_at,
                    json.dumps(bundle.files, sort_keys=True),
                ),
            )
            seq = int(cursor.lastrowid or 0)
        return PolicyEvent(
            seq,
            bundle.version,
            action,
            bundle.message,
            bundle.author,
            bundle.published_at,
            bundle.files,
        )

    def history(self) -> list[PolicyEvent]:
        """Every event, oldest first."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT seq, version, action, message, author, at, files"
                " FROM policy_events ORDER BY seq"
            ).fetchall()
        return [_event(row) for row in rows]

    def latest(self) -> PolicyEvent | None:
        events = self.history()
        return events[-1] if events else None

    def find(self, version: str) -> PolicyEvent:
        """The newest event of a version given in full (``sha256:...``) or by a unique prefix."""
        wanted = version if version.startswith("sha256:") else f"sha256:{version}"
        matches = [e for e in self.history() if e.version.startswith(wanted)]
        versions = {e.version for e in matches}
        if not versions:
            raise PolicyError(f"no published policy version {version} — see `policy history`")
        if len(versions) > 1:
            raise PolicyError(f"version {version} is ambiguous — give more of the hash")
        return matches[-1]


def _event(row: tuple[Any, ...]) -> PolicyEvent:
    seq, version, action, message, author, at, files = row
    return PolicyEvent(int(seq), version, action, message, author, at, json.loads(files))


def create_policies_topic(bootstrap_servers: str) -> None:
    """The ``policies`` topic: one partition (one order of versions), compacted."""
    create_topics(bootstrap_servers, [POLICIES_TOPIC], partitions=1, config=TOPIC_CONFIG)


def send_bundle(bootstrap_servers: str, bundle: PolicyBundle) -> None:
    """Put ``bundle`` in force: the ``current`` record of the ``policies`` topic, acknowledged."""
    create_policies_topic(bootstrap_servers)
    try:
        producer = new_producer(
            KafkaConnection(bootstrap_servers),
            acks="all",
            client_id="signalhub-policy-publish",
            max_request_size=8 * 1024 * 1024,
        )
    except Exception as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc
    try:
        producer.send(POLICIES_TOPIC, key=CURRENT_KEY, value=bundle.to_bytes()).get(timeout=30)
    except Exception as exc:
        raise BrokerError(
            f"could not publish policy {bundle.version} to {POLICIES_TOPIC}: {exc} — "
            "the previous version stays in force; retry when Kafka is reachable"
        ) from exc
    finally:
        producer.close()


def read_current_bundle(bootstrap_servers: str, *, idle_ms: int = 500) -> bytes | None:
    """The raw value of the latest ``current`` record on the topic (None when there is none)."""
    create_policies_topic(bootstrap_servers)
    consumer = open_consumer(bootstrap_servers, client_id="signalhub-policy-read")
    try:
        assign_topic(consumer, POLICIES_TOPIC)
        latest: bytes | None = None
        for record in drain(consumer, idle_ms=idle_ms):
            if record.key == CURRENT_KEY:
                latest = record.value
        return latest
    finally:
        consumer.close()
