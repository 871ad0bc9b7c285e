"""The audit store: the tamper-evident disclosure log behind ``signalhub audit`` (docs/audit.md).

Flow: the enforcer writes one audit record per decision to the ``audit`` topic, a signal's
decisions together in one entry; :mod:`.ingest` appends them to the hash-chained :mod:`.store`;
:mod:`.chain` verifies it; :mod:`.queries` answers subject-access and filter questions with LDV
field names; :mod:`.reconcile` checks completeness against the delivery topics; :mod:`.retention`
removes what has expired and records that it did. This is the public surface; the rest is internal.
"""

from signalhub.audit.backends import PostgresAuditStore, SqliteAuditStore, open_store
from signalhub.audit.chain import Finding, VerifyReport
from signalhub.audit.ingest import AuditIngestor, IngestReport, audit_registry
from signalhub.audit.queries import (
    AuditQuery,
    find,
    subject_disclosures,
    subject_refs_for,
    to_ldv,
)
from signalhub.audit.reconcile import Gap, ReconcileReport, reconcile
from signalhub.audit.retention import RetentionPlan, RetentionReport, run_retention
from signalhub.audit.store import AuditStore, StoredRecord

__all__ = [
    "AuditIngestor",
    "AuditQuery",
    "AuditStore",
    "Finding",
    "Gap",
    "IngestReport",
    "PostgresAuditStore",
    "ReconcileReport",
    "RetentionPlan",
    "RetentionReport",
    "SqliteAuditStore",
    "StoredRecord",
    "VerifyReport",
    "audit_registry",
    "find",
    "open_store",
    "reconcile",
    "run_retention",
    "subject_disclosures",
    "subject_refs_for",
    "to_ldv",
]
