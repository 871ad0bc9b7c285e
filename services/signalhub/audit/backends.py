"""The audit store's two backends: SQLite (embedded default) and PostgreSQL (production).

They differ only in how a connection is opened, how a write is serialised and how a parameter is
spelled; everything else is :class:`~signalhub.audit.store.AuditStore`.

A store's connection belongs to the thread that opened it (sqlite3 enforces this), so a role
opens its store where it uses it. When the database cannot be reached or written (PostgreSQL
restarting, SQLite locked, a disk full) the store raises
:class:`~signalhub.errors.StoreUnavailableError`: the caller closes it, waits and opens a new
one. A setting that can never work raises :class:`~signalhub.errors.ConfigError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from signalhub.audit.store import AuditStore, Cursor
from signalhub.config import Settings
from signalhub.errors import ConfigError, StoreUnavailableError

__all__ = [
    "SQLITE_FILE",
    "PostgresAuditStore",
    "SqliteAuditStore",
    "StoreTarget",
    "open_store",
    "store_target",
]

SQLITE_FILE = "audit.sqlite"
#: Seconds a PostgreSQL connection attempt may take, unless the DSN says otherwise.
CONNECT_TIMEOUT_S = 10

#: SQLite result codes that mean "not now" (locked, unwritable, disk full), not a bug.
_SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
    "SQLITE_PROTOCOL",
)


def _pg_unavailable(exc: BaseException) -> bool:
    """PostgreSQL gone, restarting, shutting down or refusing connections."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _sqlite_unavailable(exc: BaseException) -> bool:
    """The file locked, unwritable or on a full disk (a schema or SQL error is not this)."""
    if isinstance(exc, OSError):
        return True
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.OperationalError) and name.startswith(_SQLITE_TRANSIENT)


@contextmanager
def _unavailable_on(transient: Callable[[BaseException], bool]) -> Iterator[None]:
    """Turn a backend's "cannot reach or write the database now" into StoreUnavailableError."""
    try:
        yield
    except Exception as exc:
        if not transient(exc):
            raise
        raise StoreUnavailableError(f"{type(exc).__name__}: {_first_line(exc)}") from exc


@dataclass(frozen=True)
class StoreTarget:
    """Where the settings put the audit store: a SQLite file or a PostgreSQL DSN."""

    backend: str  # "sqlite" | "postgres"
    sqlite_path: Path | None = None
    dsn: str = ""


def store_target(settings: Settings) -> StoreTarget:
    """Parse ``SIGNALHUB_AUDIT_DSN`` (empty: SQLite under ``state_dir``); ConfigError if invalid."""
    dsn = settings.audit_dsn.get_secret_value()
    if not dsn:
        return StoreTarget("sqlite", sqlite_path=settings.state_dir / SQLITE_FILE)
    if dsn.startswith("sqlite:///"):
        return StoreTarget("sqlite", sqlite_path=Path(dsn.removeprefix("sqlite:///")))
    if dsn.startswith(("postgresql://", "postgres://")):
        try:
            conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"SIGNALHUB_AUDIT_DSN is not a valid PostgreSQL DSN ({exc}) — fix the setting"
            ) from exc
        return StoreTarget("postgres", dsn=dsn)
    raise ConfigError(
        "SIGNALHUB_AUDIT_DSN must be empty (SQLite in the state directory), "
        "sqlite:///<path> or postgresql://... — fix the setting"
    )


class SqliteAuditStore(AuditStore):
    """The embedded default: one SQLite file (WAL), safe for one writer and many readers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with _unavailable_on(_sqlite_unavailable):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            try:
                self._connection.execute("PRAGMA journal_mode=WAL")
                super().__init__()
            except BaseException:
                self._connection.close()
                raise

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        with _unavailable_on(_sqlite_unavailable):
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (disk full); the original error matters.
                with suppress(sqlite3.Error):
                    cursor.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        with _unavailable_on(_sqlite_unavailable):
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
    #: Held until the schema transaction ends; the number only has to be the hub's own.
    schema_lock = "SELECT pg_advisory_xact_lock(7213505141)"

    def __init__(self, dsn: str) -> None:
        try:
            if "connect_timeout" not in conninfo_to_dict(dsn):
                dsn = make_conninfo(dsn, connect_timeout=CONNECT_TIMEOUT_S)
            self._connection = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            if _pg_unavailable(exc):
                raise StoreUnavailableError(
                    f"cannot connect to the audit store database ({type(exc).__name__}: "
                    f"{_first_line(exc)}) — is PostgreSQL running? check SIGNALHUB_AUDIT_DSN"
                ) from exc
            raise ConfigError(
                f"cannot connect to the audit store database: {exc.__class__.__name__} — "
                "check SIGNALHUB_AUDIT_DSN"
            ) from exc
        try:
            with _unavailable_on(_pg_unavailable):
                super().__init__()
        except BaseException:
            self._connection.close()
            raise

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        with (
            _unavailable_on(_pg_unavailable),
            self._connection.transaction(),
            self._connection.cursor() as cursor,
        ):
            yield cursor

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        with (
            _unavailable_on(_pg_unavailable),
            self._connection.transaction(),
            self._connection.cursor() as cursor,
        ):
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield cursor

    def close(self) -> None:
        self._connection.close()

    def __repr__(self) -> str:  # the DSN may hold a password
        return "PostgresAuditStore()"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_store(settings: Settings) -> AuditStore:
    """The store ``SIGNALHUB_AUDIT_DSN`` names: SQLite under ``state_dir`` when empty.

    Raises :class:`ConfigError` for a setting that can never work and
    :class:`StoreUnavailableError` when the database cannot be reached now.
    """
    target = store_target(settings)
    if target.sqlite_path is not None:
        return SqliteAuditStore(target.sqlite_path)
    return PostgresAuditStore(target.dsn)
