"""The bundler's state in SQLite: signals seen, bundles, alert outbox, wijkbeeld, hit/no-hit log.

Why SQLite and not a faust Table: tansu restores Tables from their changelog stale (DESIGN.md),
and this state must survive a crash exactly. The bundler writes a whole batch in one transaction
and commits its Kafka offsets only afterwards, so a crash re-reads the batch; ``signals`` is keyed
on ``signal_id``, which makes re-reading harmless (at-least-once in, idempotent state).

Alerts use a transactional outbox: an alert revision is written in the same transaction as the
signal that caused it, published after the commit and then marked sent, so no crash can lose or
invent one (a crash between publishing and marking re-publishes the same signal id).

Nothing personal is stored: subjects are pseudonyms (``signalhub-bundling`` and
``zvh-casework``); signals are kept as (id, type, agency, observed time, neighbourhood code).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from signalhub.bundling.subjects import Subject
from signalhub.errors import StateWriteError

__all__ = ["Alert", "BundleStore", "Contribution", "store_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    signal_id TEXT PRIMARY KEY, signal_type TEXT NOT NULL, agency TEXT NOT NULL,
    observed_ms INTEGER NOT NULL, neighbourhood TEXT NOT NULL, iso_week TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
    subject TEXT PRIMARY KEY, kind TEXT NOT NULL, casework_ref TEXT NOT NULL,
    bundle_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS contributions (
    subject TEXT NOT NULL REFERENCES bundles(subject), signal_id TEXT NOT NULL,
    person TEXT, PRIMARY KEY (subject, signal_id));
CREATE TABLE IF NOT EXISTS alerts (
    bundle_id TEXT NOT NULL, revision INTEGER NOT NULL, signal_id TEXT NOT NULL,
    signal_count INTEGER NOT NULL, value BLOB NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bundle_id, revision));
CREATE TABLE IF NOT EXISTS hit_no_hit_log (
    seq INTEGER PRIMARY KEY, asked_at TEXT NOT NULL, asker TEXT NOT NULL,
    subject_ref TEXT NOT NULL, allowed INTEGER NOT NULL, known INTEGER, partners TEXT NOT NULL,
    reasons TEXT NOT NULL, policy_version TEXT NOT NULL, prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS hit_no_hit_log_no_update BEFORE UPDATE ON hit_no_hit_log
    BEGIN SELECT RAISE(ABORT, 'the hit/no-hit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS hit_no_hit_log_no_delete BEFORE DELETE ON hit_no_hit_log
    BEGIN SELECT RAISE(ABORT, 'the hit/no-hit log is append-only'); END;
"""


def store_path(state_dir: Path) -> Path:
    """Where the bundler keeps its state: ``<state_dir>/bundling.sqlite``."""
    return state_dir / "bundling.sqlite"


@dataclass(frozen=True)
class Contribution:
    """One signal in a bundle: who reported what, when; never its content."""

    signal_id: str
    agency: str
    signal_type: str
    observed_ms: int
    person: str | None


@dataclass(frozen=True)
class Alert:
    """One revision of a bundle's casework_alert, encoded, as kept in the outbox."""

    bundle_id: str
    revision: int
    signal_id: str
    signal_count: int
    value: bytes


class BundleStore:
    """The SQLite file behind the bundler, hit/no-hit and the wijkbeeld (WAL: readers in
    other processes see committed state while the bundler writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StateWriteError(
                f"bundler state cannot be opened: {_cause(exc)} — {path}"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BundleStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit: everything inside is committed together or not at all.

        A write the file refuses (disk full, read-only, I/O error) raises
        :class:`StateWriteError`: nothing of the unit is kept, and the caller must not commit
        the offsets it read.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (after SQLITE_FULL); a failed COMMIT has not.
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            raise StateWriteError(
                f"bundler state write failed: {_cause(exc)} — {self.path}"
            ) from exc

    # -- signals and bundles ------------------------------------------------------------------

    def add_signal(
        self,
        signal_id: str,
        signal_type: str,
        agency: str,
        observed_ms: int,
        neighbourhood: str,
        iso_week: str,
    ) -> bool:
        """Remember a signal; False when it was seen before (then nothing else is to be done)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO signals VALUES (?, ?, ?, ?, ?, ?)",
            (signal_id, signal_type, agency, observed_ms, neighbourhood, iso_week),
        )
        return cursor.rowcount == 1

    def add_contribution(self, subject: Subject, signal_id: str, person: str | None) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO bundles VALUES (?, ?, ?, ?)",
            (subject.key, subject.kind, subject.casework_ref, subject.bundle_id),
        )
        self._db.execute(
            "INSERT OR IGNORE INTO contributions VALUES (?, ?, ?)",
            (subject.key, signal_id, person),
        )

    def bundle(self, subject_key: str) -> tuple[str, str, str] | None:
        """``(kind, casework_ref, bundle_id)`` of a bundle, or None."""
        row = self._db.execute(
            "SELECT kind, casework_ref, bundle_id FROM bundles WHERE subject = ?", (subject_key,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def contributions(self, subject_key: str) -> list[Contribution]:
        """The bundle's signals, oldest first."""
        rows = self._db.execute(
            "SELECT s.signal_id, s.agency, s.signal_type, s.observed_ms, c.person "
            "FROM contributions c JOIN signals s USING (signal_id) WHERE c.subject = ? "
            "ORDER BY s.observed_ms, s.signal_id",
            (subject_key,),
        ).fetchall()
        return [Contribution(str(r[0]), str(r[1]), str(r[2]), int(r[3]), r[4]) for r in rows]

    # -- the alert outbox ---------------------------------------------------------------------

    def latest_alert(self, the_bundle_id: str) -> Alert | None:
        row = self._db.execute(
            "SELECT bundle_id, revision, signal_id, signal_count, value FROM alerts "
            "WHERE bundle_id = ? ORDER BY revision DESC LIMIT 1",
            (the_bundle_id,),
        ).fetchone()
        return None if row is None else _alert(row)

    def add_alert(self, alert: Alert) -> None:
        self._db.execute(
            "INSERT INTO alerts (bundle_id, revision, signal_id, signal_count, value) "
            "VALUES (?, ?, ?, ?, ?)",
            (alert.bundle_id, alert.revision, alert.signal_id, alert.signal_count, alert.value),
        )

    def unsent_alerts(self) -> list[Alert]:
        rows = self._db.execute(
            "SELECT bundle_id, revision, signal_id, signal_count, value FROM alerts "
            "WHERE sent = 0 ORDER BY rowid"
        ).fetchall()
        return [_alert(row) for row in rows]

    def mark_sent(self, alerts: list[Alert]) -> None:
        with self.transaction():
            self._db.executemany(
                "UPDATE alerts SET sent = 1 WHERE bundle_id = ? AND revision = ?",
                [(a.bundle_id, a.revision) for a in alerts],
            )

    def alert_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM alerts").fetchone()[0])

    def sent_alert_ids(self) -> list[str]:
        """Signal ids of the alert revisions published (marked sent), oldest first."""
        rows = self._db.execute(
            "SELECT signal_id FROM alerts WHERE sent = 1 ORDER BY rowid"
        ).fetchall()
        return [str(row[0]) for row in rows]

    def known_signals(self, signal_ids: Iterable[str]) -> set[str]:
        """Those of ``signal_ids`` the bundler has taken in (committed)."""
        wanted = sorted(set(signal_ids))
        known: set[str] = set()
        for start in range(0, len(wanted), 500):  # stay below SQLite's variable limit
            chunk = wanted[start : start + 500]
            rows = self._db.execute(
                "SELECT signal_id FROM signals WHERE signal_id IN "  # noqa: S608 - placeholders
                f"({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            known.update(str(row[0]) for row in rows)
        return known

    # -- read side: hit/no-hit and wijkbeeld --------------------------------------------------

    def agencies_of(self, subject_key: str) -> list[str]:
        """The agencies that reported signals in this bundle, sorted (none: unknown)."""
        rows = self._db.execute(
            "SELECT DISTINCT s.agency FROM contributions c JOIN signals s USING (signal_id) "
            "WHERE c.subject = ? ORDER BY s.agency",
            (subject_key,),
        ).fetchall()
        return [str(row[0]) for row in rows]

    def counts(self) -> list[tuple[str, str, str, int]]:
        """``(neighbourhood, signal_type, iso_week, count)`` over every signal seen, sorted."""
        rows = self._db.execute(
            "SELECT neighbourhood, signal_type, iso_week, count(*) FROM signals "
            "GROUP BY neighbourhood, signal_type, iso_week "
            "ORDER BY neighbourhood, iso_week, signal_type"
        ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def execute(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """For the hit/no-hit log (same file, same connection discipline)."""
        return list(self._db.execute(sql, parameters).fetchall())


def _cause(exc: BaseException) -> str:
    """SQLite's message, or the OS error without its path (the path is said once, after it)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _alert(row: tuple[object, ...]) -> Alert:
    value = row[4]
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("alert value is not a blob")
    return Alert(str(row[0]), int(str(row[1])), str(row[2]), int(str(row[3])), bytes(value))
