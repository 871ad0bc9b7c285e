"""Policy versions: what was published, by whom, when, why — and how it reaches the enforcers.

A published version is a :class:`PolicyBundle`: every file under ``policies/`` (rules, data and
tests) with the version hash the engine computes over the rules and data. Each publish and each
rollback is an event in a small SQLite store under the state directory (``policy history``), and
the version in force is distributed on the compacted ``policies`` topic under the key
``current``: every enforcer reads the latest record at start-up and follows the topic after
that (:mod:`signalhub.policy.switch`). The topic, not the store, is the authority of what is in
force; the store is the record of who put it there.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from signalhub.broker.embedded import create_topics
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.errors import BrokerError, PolicyError
from signalhub.policy.engine import policy_files, policy_version

__all__ = [
    "CURRENT_KEY",
    "POLICIES_TOPIC",
    "PolicyBundle",
    "PolicyEvent",
    "PolicyStore",
    "bundle_from_dir",
    "create_policies_topic",
    "materialised",
    "read_current_bundle",
    "send_bundle",
]

POLICIES_TOPIC = "policies"
CURRENT_KEY = b"current"
#: Only the latest record per key matters, so the topic is compacted (where the broker can).
TOPIC_CONFIG = {"cleanup.policy": "compact"}
_FORMAT = 1


@dataclass(frozen=True)
class PolicyBundle:
    """One policy version: its files (relative path -> text) and who published it, why, when."""

    version: str
    files: dict[str, str]
    message: str = ""
    author: str = ""
    published_at: str = ""

    def to_bytes(self) -> bytes:
        body = {
            "format": _FORMAT,
            "version": self.version,
            "message": self.message,
            "author": self.author,
            "published_at": self.published_at,
            "files": self.files,
        }
        return json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> PolicyBundle:
        """Parse a bundle from the topic; :class:`PolicyError` when it is not one."""
        try:
            body = json.loads(data)
            files = body["files"]
            if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()
            ):
                raise TypeError("files is not an object of texts")
            return cls(
                str(body["version"]),
                dict(files),
                str(body.get("message", "")),
                str(body.get("author", "")),
                str(body.get("published_at", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PolicyError(f"not a policy bundle: {exc}") from exc

    def stamped(self, message: str, author: str) -> PolicyBundle:
        """The same files, with a publish message, author and time."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return PolicyBundle(self.version, dict(self.files), message, author, now)


def bundle_from_dir(policies_dir: Path) -> PolicyBundle:
    """Every policy file under ``policies_dir`` (tests included) and the version of the rules."""
    files = policy_files(policies_dir, tests=True)
    texts = {path.relative_to(policies_dir).as_posix(): path.read_text("utf-8") for path in files}
    return PolicyBundle(policy_version(policies_dir, policy_files(policies_dir)), texts)


@contextmanager
def materialised(bundle: PolicyBundle) -> Iterator[Path]:
    """The bundle's files written to a temporary ``policies/`` directory, removed afterwards.

    Refuses paths that would leave the directory, and a bundle whose files do not hash to the
    version it claims (a tampered or corrupted record).
    """
    scratch = Path(tempfile.mkdtemp(prefix="signalhub-policy-"))
    root = scratch / "policies"
    try:
        for name, text in bundle.files.items():
            target = (root / name).resolve()
            if not target.is_relative_to(root.resolve()) or not name:
                raise PolicyError(f"policy bundle {bundle.version}: unsafe file path {name!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, "utf-8")
        root.mkdir(parents=True, exist_ok=True)
        actual = policy_version(root, policy_files(root))
        if actual != bundle.version:
            raise PolicyError(
                f"policy bundle claims version {bundle.version} but its files hash to {actual}"
                " — it was altered after publishing; publish it again with `policy publish`"
            )
        yield root
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
        producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
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
