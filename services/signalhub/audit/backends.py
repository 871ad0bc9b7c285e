"""The audit store's two backends: SQLite (embedded default) and PostgreSQL (production).

They differ only in how a connection is opened, how a write is serialised and how a parameter is
spelled; everything else is :class:`~signalhub.audit.store.AuditStore`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from signalhub.audit.store import AuditStore, Cursor
from signalhub.config import Settings
from signalhub.errors import ConfigError

__all__ = ["SQLITE_FILE", "PostgresAuditStore", "SqliteAuditStore", "open_store"]

SQLITE_FILE = "audit.sqlite"


class SqliteAuditStore(AuditStore):
    """The embedded default: one SQLite file (WAL), safe for one writer and many readers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._connection.execute("PRAGMA journal_mode=WAL")
        super().__init__()

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        cursor = self._connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        cursor = self._connection.cursor()
        cursor.execute("BEGIN")
        try:
            yield cursor
        finally:
            cursor.execute("COMMIT")

    def close(self) -> None:
        self._connection.close()

    def __repr__(self) -> str:
        return f"SqliteAuditStore({self.path})"


class PostgresAuditStore(AuditStore):
    """Production: PostgreSQL through psycopg 3; the head row lock serialises writers."""

    placeholder = "%s"
    lock_clause = " FOR UPDATE"

    def __init__(self, dsn: str) -> None:
        try:
            self._connection = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise ConfigError(
                f"cannot connect to the audit store database: {exc.__class__.__name__} — "
                "check SIGNALHUB_AUDIT_DSN and that PostgreSQL is running"
            ) from exc
        super().__init__()

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._connection.transaction(), self._connection.cursor() as cursor:
            yield cursor

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self._connection.transaction(), self._connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield cursor

    def close(self) -> None:
        self._connection.close()

    def __repr__(self) -> str:  # the DSN may hold a password
        return "PostgresAuditStore()"


def open_store(settings: Settings) -> AuditStore:
    """The store ``SIGNALHUB_AUDIT_DSN`` names: SQLite under ``state_dir`` when empty."""
    dsn = settings.audit_dsn.get_secret_value()
    if not dsn:
        return SqliteAuditStore(settings.state_dir / SQLITE_FILE)
    if dsn.startswith(("postgresql://", "postgres://")):
        return PostgresAuditStore(dsn)
    if dsn.startswith("sqlite:///"):
        return SqliteAuditStore(Path(dsn.removeprefix("sqlite:///")))
    raise ConfigError(
        "SIGNALHUB_AUDIT_DSN must be empty (SQLite in the state directory), "
        "sqlite:///<path> or postgresql://... — fix the setting"
    )
