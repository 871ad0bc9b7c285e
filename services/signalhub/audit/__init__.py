"""The audit store: the tamper-evident disclosure log behind ``signalhub audit`` (docs/audit.md).

Flow: the enforcer writes one audit record per decision to the ``audit`` topic, a signal's
decisions together in one entry; :mod:`.ingest` appends them to the hash-chained :mod:`.store`;
:mod:`.chain` verifies it; :mod:`.queries` answers subject-access and filter questions with LDV
field names; :mod:`.reconcile` checks completeness against the delivery topics; :mod:`.retention`
removes what has expired and records that it did; :mod:`.record` is the audit record the
enforcer writes. Import from those modules: this package imports none of them, because the
enforcer's pure core uses :mod:`.record` and must not load the Kafka clients that
:mod:`.ingest`, :mod:`.reconcile` and :mod:`.retention` need.
"""
