"""Audit stores for tests, on real SQLite and real PostgreSQL, plus a tamperer's raw access.

PostgreSQL runs at 127.0.0.1:5432 (database ``test``, user ``postgres``, trust); every store gets
a schema of its own (through ``search_path`` in the DSN) that is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from signalhub.audit import record as audit_record
from signalhub.audit.backends import PostgresAuditStore, SqliteAuditStore
from signalhub.audit.store import AuditStore
from signalhub.types import Record
from signalhub.wire import delivery_id

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgres")
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class StoreHandle:
    """A store and the raw SQL access someone with database rights has."""

    store: AuditStore
    backend: str
    dsn: str

    def sql(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run SQL directly on the database, bypassing the store (``?`` placeholders)."""
        if self.backend == "sqlite":
            with contextlib.closing(sqlite3.connect(self.dsn)) as connection, connection:
                return connection.execute(text, tuple(params)).fetchall()
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            cursor = connection.execute(text.replace("?", "%s"), tuple(params))
            return cursor.fetchall() if cursor.description else []

    def reopen(self) -> AuditStore:
        self.store.close()
        self.store = open_backend(self.backend, self.dsn)
        return self.store


def open_backend(backend: str, dsn: str) -> AuditStore:
    if backend == "sqlite":
        return SqliteAuditStore(Path(dsn))
    return PostgresAuditStore(dsn)


@contextlib.contextmanager
def store_handle(backend: str, tmp_path: Path) -> Iterator[StoreHandle]:
    """A fresh, empty store on ``backend``; dropped afterwards."""
    if backend == "sqlite":
        path = str(tmp_path / "audit_record.sqlite")
        handle = StoreHandle(SqliteAuditStore(Path(path)), backend, path)
        try:
            yield handle
        finally:
            handle.store.close()
        return
    schema = f"audit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    dsn = f"{PG_DSN}?options=-csearch_path%3D{schema}"
    handle = StoreHandle(PostgresAuditStore(dsn), backend, dsn)
    try:
        yield handle
    finally:
        handle.store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def decision(
    n: int,
    *,
    outcome: str = "allow",
    subscriber: str = "gemeente",
    signal_type: str = "nuisance_report",
    subject_refs: tuple[str, ...] = (),
    decided_at: datetime | None = None,
) -> Record:
    """A realistic audit record (as decoded from the topic) for the n-th signal."""
    signal_id = str(uuid.UUID(int=n))
    context = audit_record.DecisionContext(
        signal_id=signal_id,
        signal_type=signal_type,
        source_agency="politie",
        source_topic=f"signals.{signal_type}",
        source_partition=0,
        source_offset=n,
        observed_at=T0,
        subject_refs=subject_refs,
    )
    allowed = outcome == "allow"
    return audit_record.audit_record(
        context,
        subscription_id=f"{subscriber}-sub",
        subscriber=subscriber,
        purpose="public_order",
        legal_basis="Gemeentewet art. 172",
        policy_version="v" * 8,
        outcome=outcome,
        reasons=("agreement ok",) if allowed else ("no agreement",),
        decided_at=decided_at or T0 + timedelta(minutes=n),
        clear=("category", "severity") if allowed else (),
        pseudonymised=("subject_bsn",) if allowed else (),
        withheld=("subject_name",) if allowed else ("category", "severity", "subject_bsn"),
        pseudonym_domain="gemeente" if allowed else None,
        delivery=delivery_id(signal_id, subscriber) if allowed else None,
    )
