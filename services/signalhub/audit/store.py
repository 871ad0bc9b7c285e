"""The audit store: an append-only, hash-chained table of audit records, in SQLite or PostgreSQL.

One row per decision (``kind = "decision"``, ``entry_id`` = its ``decision_id``) or per
retention run (``kind = "retention"``). The whole record is kept as canonical JSON (``body``),
which is what the chain hashes (:mod:`signalhub.audit.chain`); a few of its fields are
copied into indexed columns and subject references into ``audit_subject`` for queries, and
``verify`` checks those copies against the body, so a query cannot be misled unnoticed.

Appends are serialised (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``SELECT ... FOR UPDATE`` on the
one-row ``audit_head``) and idempotent on ``entry_id``: a decision delivered twice by the
at-least-once pipeline is stored once, the first copy wins. The backends (SQLite, PostgreSQL)
live in :mod:`signalhub.audit.backends`. Nothing updates a row; the only
delete is retention's, done in the same transaction as the entry that declares it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from signalhub.audit.chain import (
    ChainRow,
    Finding,
    RemovedRange,
    VerifyReport,
    link_row,
    verify_chain,
)
from signalhub.ledger import GENESIS
from signalhub.types import Record
from signalhub.wire import canonical_json

__all__ = [
    "AppendResult",
    "AuditStore",
    "StoredRecord",
    "record_body",
]

DECISION = "decision"
RETENTION = "retention"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY,
        kind TEXT NOT NULL,
        entry_id TEXT NOT NULL UNIQUE,
        signal_id TEXT,
        signal_type TEXT,
        subscription_id TEXT,
        subscriber TEXT,
        outcome TEXT,
        delivery_id TEXT,
        decided_ms BIGINT NOT NULL,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        row_hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_log_signal ON audit_log (signal_id)",
    "CREATE INDEX IF NOT EXISTS audit_log_decided ON audit_log (decided_ms)",
    "CREATE INDEX IF NOT EXISTS audit_log_subscriber ON audit_log (subscriber, decided_ms)",
    "CREATE INDEX IF NOT EXISTS audit_log_delivery ON audit_log (delivery_id)",
    """CREATE TABLE IF NOT EXISTS audit_subject (
        subject_ref TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (subject_ref, seq))""",
    """CREATE TABLE IF NOT EXISTS audit_head (
        id INTEGER PRIMARY KEY,
        seq BIGINT NOT NULL,
        row_hash TEXT NOT NULL)""",
    "INSERT INTO audit_head (id, seq, row_hash) VALUES (1, 0, '"  # noqa: S608 - a constant
    + GENESIS
    + "') ON CONFLICT (id) DO NOTHING",
)
_COLUMNS = "seq, kind, entry_id, body, prev_hash, row_hash"
#: Columns copied from a decision record for queries (column name = record field name).
_INDEXED = ("signal_id", "signal_type", "subscription_id", "subscriber", "outcome", "delivery_id")


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses (sqlite3 and psycopg both provide it)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True)
class StoredRecord:
    """One row as queries return it; ``record`` is the stored JSON (times as ISO 8601 text)."""

    seq: int
    kind: str
    entry_id: str
    record: dict[str, Any]
    row_hash: str


@dataclass(frozen=True)
class AppendResult:
    """What an append did: rows added, and entries already stored (or repeated in the batch)."""

    inserted: int
    duplicates: int
    head_seq: int


def _iso(value: datetime) -> str:
    """Avro timestamp-millis as UTC ISO 8601 with milliseconds: one spelling, so one hash."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def record_body(record: Record) -> str:
    """The canonical JSON of a decoded audit record, as stored and hashed."""
    return canonical_json(_jsonable(record))


def _millis(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


class AuditStore(ABC):
    """Append-only, hash-chained audit records; the backends differ only in connection handling."""

    #: How a backend spells a query parameter in SQL.
    placeholder = "?"
    #: What a backend appends to the head select to lock it for the transaction.
    lock_clause = ""
    #: A statement that makes schema creation wait for another process doing it (PostgreSQL's
    #: ``CREATE TABLE IF NOT EXISTS`` fails against a concurrent one; SQLite's ``BEGIN
    #: IMMEDIATE`` already serialises it).
    schema_lock = ""

    def __init__(self) -> None:
        with self._write() as cursor:
            if self.schema_lock:
                cursor.execute(self.schema_lock)
            for statement in _SCHEMA:
                cursor.execute(statement)

    # -- backend hooks -------------------------------------------------------------------------

    @abstractmethod
    def _write(self) -> AbstractContextManager[Cursor]:
        """A transaction that is serialised against every other writer."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Cursor]:
        """A read transaction (one consistent snapshot)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _run(self, cursor: Cursor, text: str, params: Sequence[Any] = ()) -> Any:
        return cursor.execute(self._sql(text), tuple(params))

    # -- writing -------------------------------------------------------------------------------

    def append(self, records: Iterable[Record]) -> AppendResult:
        """Store decoded audit records; one already stored (same ``decision_id``) is skipped."""
        batch = [(str(record["decision_id"]), record_body(record)) for record in records]
        with self._write() as cursor:
            seq, last = self._lock_head(cursor)
            known = self._existing(cursor, [entry_id for entry_id, _ in batch])
            inserted = 0
            for entry_id, body in batch:
                if entry_id in known:
                    continue
                known.add(entry_id)
                seq, last = self._insert(cursor, seq + 1, DECISION, entry_id, body, last)
                inserted += 1
            self._set_head(cursor, seq, last)
        return AppendResult(inserted, len(batch) - inserted, seq)

    def remove_and_record(
        self,
        cutoff_ms: int,
        entry_id: str,
        make_entry: Callable[[list[RemovedRange], int, tuple[int, int] | None], dict[str, Any]],
    ) -> tuple[int, list[RemovedRange]]:
        """Delete decision rows decided before ``cutoff_ms`` and append the entry declaring it.

        One transaction: the store is never seen with an undeclared gap. ``make_entry(ranges,
        count, (first_ms, last_ms) | None)`` builds the retention entry's record. Returns the
        entry's sequence number and the removed ranges.
        """
        with self._write() as cursor:
            seq, last = self._lock_head(cursor)
            rows = self._run(
                cursor,
                "SELECT seq, row_hash, decided_ms FROM audit_log "
                "WHERE kind = ? AND decided_ms < ? ORDER BY seq",
                (DECISION, cutoff_ms),
            ).fetchall()
            ranges = _runs([(int(r[0]), str(r[1])) for r in rows])
            span = (min(int(r[2]) for r in rows), max(int(r[2]) for r in rows)) if rows else None
            for removed in ranges:
                for table in ("audit_subject", "audit_log"):
                    self._run(
                        cursor,
                        f"DELETE FROM {table} WHERE seq >= ? AND seq <= ?",  # noqa: S608
                        (removed.first_seq, removed.last_seq),
                    )
            body = canonical_json(make_entry(ranges, len(rows), span))
            seq, last = self._insert(cursor, seq + 1, RETENTION, entry_id, body, last)
            self._set_head(cursor, seq, last)
        return seq, ranges

    def _lock_head(self, cursor: Cursor) -> tuple[int, str]:
        row = self._run(
            cursor,
            "SELECT seq, row_hash FROM audit_head WHERE id = 1" + self.lock_clause,  # noqa: S608
        ).fetchone()
        return int(row[0]), str(row[1])

    def _set_head(self, cursor: Cursor, seq: int, last: str) -> None:
        self._run(cursor, "UPDATE audit_head SET seq = ?, row_hash = ? WHERE id = 1", (seq, last))

    def _existing(self, cursor: Cursor, entry_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(entry_ids), 500):
            chunk = entry_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self._run(
                cursor,
                f"SELECT entry_id FROM audit_log WHERE entry_id IN ({marks})",  # noqa: S608
                chunk,
            ).fetchall()
            found.update(str(row[0]) for row in rows)
        return found

    def _insert(
        self, cursor: Cursor, seq: int, kind: str, entry_id: str, body: str, prev: str
    ) -> tuple[int, str]:
        digest = link_row(kind, entry_id, prev, body).hash
        record = json.loads(body)
        indexed = [record.get(name) if kind == DECISION else None for name in _INDEXED]
        decided = record.get("decided_at") or record.get("ran_at")
        self._run(
            cursor,
            "INSERT INTO audit_log (seq, kind, entry_id, signal_id, signal_type, subscription_id, "
            "subscriber, outcome, delivery_id, decided_ms, body, prev_hash, row_hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, kind, entry_id, *indexed, _millis(decided), body, prev, digest),
        )
        for ref in sorted(set(record.get("subject_refs") or [])) if kind == DECISION else []:
            self._run(
                cursor, "INSERT INTO audit_subject (subject_ref, seq) VALUES (?, ?)", (ref, seq)
            )
        return seq, digest

    # -- reading -------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(seq, row_hash) of the last row appended."""
        with self._read() as cursor:
            row = self._run(cursor, "SELECT seq, row_hash FROM audit_head WHERE id = 1").fetchone()
        return int(row[0]), str(row[1])

    def verify(self, anchors: Iterable[tuple[int, str]] = ()) -> VerifyReport:
        """Verify the whole chain (see :func:`signalhub.audit.chain.verify_chain`)."""
        with self._read() as cursor:
            rows = self._run(
                cursor,
                f"SELECT {_COLUMNS}, signal_id, signal_type, subscription_id, subscriber, "  # noqa: S608
                "outcome, delivery_id, decided_ms FROM audit_log ORDER BY seq",
            ).fetchall()
            refs: dict[int, set[str]] = {}
            subject_rows = self._run(cursor, "SELECT seq, subject_ref FROM audit_subject")
            for seq, ref in subject_rows.fetchall():
                refs.setdefault(int(seq), set()).add(str(ref))
            head_row = self._run(cursor, "SELECT seq, row_hash FROM audit_head WHERE id = 1")
            head = head_row.fetchone()
        chain = [_chain_row(row, refs.pop(int(row[0]), set())) for row in rows]
        report = verify_chain(chain, (int(head[0]), str(head[1])), anchors)
        for seq in sorted(refs):
            report.findings.append(_orphan_refs(seq))
        return report

    def select(self, where: str = "", params: Sequence[Any] = ()) -> list[StoredRecord]:
        """Rows matching an SQL condition (``?`` placeholders), in sequence order.

        The condition may use the indexed columns and ``seq IN (SELECT seq FROM audit_subject
        WHERE ...)``; :mod:`signalhub.audit.queries` builds it, never from user text.
        """
        sql = f"SELECT {_COLUMNS} FROM audit_log"  # noqa: S608
        if where:
            sql += f" WHERE {where}"
        with self._read() as cursor:
            rows = self._run(cursor, sql + " ORDER BY seq", params).fetchall()
        return [
            StoredRecord(int(r[0]), str(r[1]), str(r[2]), json.loads(r[3]), str(r[5])) for r in rows
        ]

    def entry_ids(self, kind: str = DECISION) -> set[str]:
        """Every stored entry id of one kind (reconciliation compares them with the topic)."""
        with self._read() as cursor:
            rows = self._run(cursor, "SELECT entry_id FROM audit_log WHERE kind = ?", (kind,))
            return {str(row[0]) for row in rows.fetchall()}

    def count(self) -> int:
        with self._read() as cursor:
            return int(self._run(cursor, "SELECT COUNT(*) FROM audit_log").fetchone()[0])


def _runs(rows: list[tuple[int, str]]) -> list[RemovedRange]:
    """Group (seq, hash) pairs in seq order into runs of consecutive numbers."""
    ranges: list[RemovedRange] = []
    for seq, digest in rows:
        if ranges and ranges[-1].last_seq == seq - 1:
            ranges[-1] = RemovedRange(ranges[-1].first_seq, seq, digest)
        else:
            ranges.append(RemovedRange(seq, seq, digest))
    return ranges


def _chain_row(row: Sequence[Any], refs: set[str]) -> ChainRow:
    seq, kind, entry_id, body, prev_hash, digest = row[:6]
    problems: list[str] = []
    try:
        record = json.loads(body)
    except ValueError:
        record = {}
    if kind == DECISION:
        expected = [record.get(name) for name in _INDEXED]
        stored = list(row[6:12])
        for name, want, have in zip(_INDEXED, expected, stored, strict=True):
            if want != have:
                problems.append(f"column {name} differs from the hashed record")
        if record.get("decision_id") != entry_id:
            problems.append("entry_id differs from the record's decision_id")
        if set(record.get("subject_refs") or []) != refs:
            problems.append("subject index differs from the record's subject_refs")
    decided = record.get("decided_at") or record.get("ran_at")
    if isinstance(decided, str) and _millis(decided) != int(row[12]):
        problems.append("column decided_ms differs from the hashed record")
    return ChainRow(
        int(seq), str(kind), str(entry_id), str(body), str(prev_hash), str(digest), tuple(problems)
    )


def _orphan_refs(seq: int) -> Finding:
    return Finding("deleted", seq, "subject index entries remain for a row that is gone")
