"""The audit store against the whole pipeline: real broker, real enforcer process, sample data.

One run of the stack (module fixture, a broker of its own so the fixed topic names are ours):
half the sample connectors publish, the enforcer is killed (SIGKILL, nothing committed) as soon
as it has decided some signals, the other half publish while it is down, it restarts and
catches up. The audit topic is then ingested into SQLite and PostgreSQL stores, and
``audit reconcile`` and ``audit subject`` are checked against what was really delivered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit_store_support import BACKENDS, StoreHandle, store_handle
from signalhub.apps.demo import (
    Accounting,
    DemoReport,
    find_inputs,
    prepare_settings,
    publish_inputs,
    run_stack,
)
from signalhub.audit.ingest import AuditIngestor, audit_registry
from signalhub.audit.queries import subject_disclosures, subject_refs_for
from signalhub.audit.reconcile import ReconcileReport, reconcile
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.config import Settings, load_settings
from signalhub.connector.definition import load_definitions
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import read_deliveries
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import load_subscriptions, subscribers
from signalhub.wire import delivery_id

pytestmark = pytest.mark.integration


@dataclass
class StackRun:
    settings: Settings
    bootstrap: str
    signal_ids: set[str]
    audit_messages: int
    bsn_signals: dict[str, set[str]]
    delivered: set[tuple[str, str]]  # (signal_id, subscriber), de-duplicated


def _quiet(_line: str) -> None:
    pass


def _bsns_by_signal(bootstrap: str, registry: SchemaRegistry) -> dict[str, set[str]]:
    """BSN -> signal ids, read from the raw signal topics (only the test reads them)."""
    consumer = open_consumer(bootstrap, client_id="test-raw-reader")
    found: dict[str, set[str]] = {}
    try:
        partitions = []
        for signal_type in registry.signal_types():
            partitions += assign_topic(consumer, registry.signal(signal_type).topic)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        for message in drain(consumer, idle_ms=1000):
            _, signal = codec.decode(registry, message.value)
            schema = registry.signal(signal["envelope"]["signal_type"])
            for spec in schema.payload_fields:
                value = signal["payload"].get(spec.name)
                if spec.pii == "bsn" and value:
                    found.setdefault(str(value), set()).add(signal["envelope"]["signal_id"])
    finally:
        consumer.close()
    return found


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    state = tmp_path_factory.mktemp("audit-stack")
    group = f"audit-test-enforcer-{int(time.time() * 1000)}"
    with pytest.MonkeyPatch.context() as patch, EmbeddedBroker() as broker:
        patch.setenv("SIGNALHUB_ENFORCER_GROUP", group)
        settings = prepare_settings(
            load_settings(state_dir=state, bootstrap_servers=broker.bootstrap_servers)
        )
        bootstrap = broker.bootstrap_servers
        registry = SchemaRegistry.from_dir(settings.schemas_dir)
        definitions = load_definitions(settings.connectors_dir)
        inputs = find_inputs(definitions, None, settings.connectors_dir)
        report = DemoReport()
        with run_stack(settings, bootstrap, _quiet) as enforcer:
            half = len(inputs) // 2
            publish_inputs(
                bootstrap, settings, registry, definitions, inputs[:half], report, _quiet
            )
            with Accounting(bootstrap, registry, settings) as accounting:
                deadline = time.monotonic() + 120
                while not accounting.audit:  # the worker has started deciding...
                    accounting.read(idle_ms=100)
                    enforcer.check_alive()
                    assert time.monotonic() < deadline, "the enforcer decided nothing"
                enforcer.kill()  # ...and dies without committing
                publish_inputs(
                    bootstrap, settings, registry, definitions, inputs[half:], report, _quiet
                )
                enforcer.start()
                signal_ids = {sid for run in report.runs for sid in run.signal_ids}
                accounting.wait_for(signal_ids, _quiet, enforcer, timeout_s=180)
                # Let the restarted worker finish what it re-reads before the topics are read.
                accounting.read(idle_ms=3000)
                audit_messages = len(accounting.audit)
                audited = {row["signal_id"] for row in accounting.audit}  # alerts included
        delivered: set[tuple[str, str]] = set()
        with ViewSchemaCatalog(bootstrap, registry) as catalog:
            for name in subscribers(load_subscriptions(settings.subscriptions_file)):
                hub_ids = {delivery_id(sid, name): sid for sid in audited}  # per-domain ids
                for record in read_deliveries(bootstrap, name, catalog, dedupe=True):
                    delivered.add((hub_ids.get(record.delivery_id, record.delivery_id), name))
        yield StackRun(
            settings,
            bootstrap,
            signal_ids,
            audit_messages,
            _bsns_by_signal(bootstrap, registry),
            delivered,
        )


@pytest.fixture(params=BACKENDS)
def ingested(
    request: pytest.FixtureRequest, stack_run: StackRun, tmp_path: Path
) -> Iterator[StoreHandle]:
    with store_handle(request.param, tmp_path) as handle:
        AuditIngestor(
            handle.store,
            audit_registry(stack_run.settings),
            stack_run.bootstrap,
            group=f"audit-ingest-{request.param}-{time.time_ns()}",
        ).run()
        yield handle


def _reconcile(run: StackRun, handle: StoreHandle) -> ReconcileReport:
    return reconcile(
        handle.store,
        audit_registry(run.settings),
        run.bootstrap,
        load_subscriptions(run.settings.subscriptions_file),
        now=datetime.now(UTC),
        delivery_retention_days=run.settings.delivery_retention_days,
    )


def test_reconcile_finds_no_gap_after_the_enforcer_was_killed_and_restarted(
    stack_run: StackRun, ingested: StoreHandle
) -> None:
    report = _reconcile(stack_run, ingested)
    assert report.gaps == []
    assert report.signals == len(stack_run.signal_ids)
    assert report.deliveries == len(stack_run.delivered) > 0
    assert report.decisions_in_store == ingested.store.count()
    assert ingested.store.verify().intact
    print(
        f"audit messages {stack_run.audit_messages}, distinct decisions "
        f"{report.decisions_in_store}, repeated deliveries {report.duplicate_deliveries}"
    )


def test_reconcile_reports_a_decision_missing_from_the_store(
    stack_run: StackRun, ingested: StoreHandle
) -> None:
    seq, decision_id, signal_id = ingested.sql(
        "SELECT seq, entry_id, signal_id FROM audit_log WHERE outcome = 'allow' ORDER BY seq"
    )[0]
    ingested.sql("DELETE FROM audit_subject WHERE seq = ?", (seq,))
    ingested.sql("DELETE FROM audit_log WHERE seq = ?", (seq,))
    report = _reconcile(stack_run, ingested)
    assert report.kinds() == {
        "not_ingested": 1,
        "missing_decision": 1,
        "delivery_without_audit": 1,
    }
    assert any(decision_id in gap.detail for gap in report.gaps)
    assert any(signal_id in gap.where for gap in report.gaps)


def _person(run: StackRun) -> tuple[str, set[str]]:
    """The BSN whose signals went to the most subscribers (and were refused to some)."""
    counts = {
        bsn: sum(1 for signal_id, _ in run.delivered if signal_id in ids)
        for bsn, ids in run.bsn_signals.items()
    }
    bsn = max(sorted(counts), key=lambda b: counts[b])
    assert counts[bsn] >= 2, "the sample data has nobody disclosed to two subscribers"
    return bsn, run.bsn_signals[bsn]


def test_subject_lists_exactly_the_disclosures_the_policy_allowed(
    stack_run: StackRun, ingested: StoreHandle
) -> None:
    bsn, signal_ids = _person(stack_run)
    refs = subject_refs_for(stack_run.settings, bsn)
    rows = subject_disclosures(ingested.store, refs)
    listed = {(row.record["signal_id"], row.record["subscriber"]) for row in rows}
    expected = {(sid, sub) for sid, sub in stack_run.delivered if sid in signal_ids}
    assert listed == expected
    assert len(rows) == len(listed)  # one record per disclosure
    assert all(row.record["signal_id"] in signal_ids for row in rows)  # nobody else's
    assert all(row.record["outcome"] == "allow" for row in rows)
    refusals = subject_disclosures(ingested.store, refs, include_refusals=True)
    assert len(refusals) > len(rows)  # denials exist, and are not disclosures
    assert all(row.record["signal_id"] in signal_ids for row in refusals)
    stored = json.dumps([row.record for row in ingested.store.select()])
    assert bsn not in stored  # the BSN itself is never in the store


def test_the_subject_command_exports_ldv_lines(
    stack_run: StackRun, ingested: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signalhub.cli import cli

    bsn, signal_ids = _person(stack_run)
    settings = stack_run.settings
    monkeypatch.setenv("SIGNALHUB_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("SIGNALHUB_KEY_FILE", str(settings.key_file))
    monkeypatch.setenv("SIGNALHUB_AUDIT_DSN", _dsn(ingested))
    result = CliRunner().invoke(cli, ["audit", "subject", bsn, "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    expected = {(sid, sub) for sid, sub in stack_run.delivered if sid in signal_ids}
    assert {
        (
            line["attributes"]["dpl.signalhub.signal_id"],
            line["attributes"]["dpl.signalhub.subscriber"],
        )
        for line in lines
    } == expected
    refs = set(subject_refs_for(settings, bsn))
    assert all(line["attributes"]["dpl.core.data_subject_id"] in refs for line in lines)
    assert all(line["attributes"]["dpl.core.data_subject_id_type"] == "BSN" for line in lines)
    assert bsn not in result.output


def _dsn(handle: StoreHandle) -> str:
    return f"sqlite:///{handle.dsn}" if handle.backend == "sqlite" else handle.dsn
