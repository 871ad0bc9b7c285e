"""``signalhub audit ...`` and ``signalhub retention run``: the privacy officer's commands.

Thin: read the settings, open the store, call the module that does the work, print. Commands
that read the hub's topics (``ingest``, ``reconcile``) use the Kafka in
``SIGNALHUB_BOOTSTRAP_SERVERS`` or the embedded broker of a running ``signalhub up``, and stop
with one line when there is neither (a broker of their own would be empty).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from signalhub.audit.backends import open_store
from signalhub.audit.ingest import AuditIngestor, audit_registry
from signalhub.audit.queries import (
    OUTCOMES,
    AuditQuery,
    find,
    is_bsn,
    subject_disclosures,
    subject_refs_for,
    to_ldv,
    write_csv,
    write_jsonl,
)
from signalhub.audit.reconcile import reconcile
from signalhub.audit.retention import RetentionPlan, run_retention
from signalhub.audit.store import AuditStore, StoredRecord
from signalhub.cli import current_settings

__all__ = ["audit_group", "retention_command"]

_FORMATS = click.Choice(["text", "csv", "jsonl"])


@contextmanager
def _store() -> Iterator[AuditStore]:
    store = open_store(current_settings())
    try:
        yield store
    finally:
        store.close()


@click.group("audit")
def audit_group() -> None:
    """The disclosure log: verify it, reconcile it, and ask who received what about whom."""


@audit_group.command()
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="SEQ:HASH",
    help="A head printed by an earlier verify, kept elsewhere; checked against the store.",
)
def verify(anchors: tuple[str, ...]) -> None:
    """Check the hash chain; name every changed, deleted, inserted or reordered row."""
    parsed: list[tuple[int, str]] = []
    for anchor in anchors:
        seq, sep, digest = anchor.partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter("expected SEQ:HASH (a 64-hex sha256)", param_hint="--anchor")
        parsed.append((int(seq), digest.lower()))
    with _store() as store:
        report = store.verify(parsed)
    click.echo(
        f"{report.rows} rows, {report.removed_by_retention} removed by retention, "
        f"head seq {report.head_seq} {report.head_hash}"
    )
    for finding in report.findings:
        click.echo(f"  {finding}")
    if not report.intact:
        click.echo(f"Error: the audit chain is broken ({len(report.findings)} findings)", err=True)
        sys.exit(1)
    click.echo("chain intact")


@audit_group.command(name="reconcile")
def reconcile_command() -> None:
    """Check every decision has one audit record and every delivery its allow record."""
    from signalhub.broker.connect import connect
    from signalhub.broker.incidents import read_incidents
    from signalhub.subscriptions import load_subscriptions

    settings = current_settings()
    subscriptions = load_subscriptions(settings.subscriptions_file)
    with connect(settings, require_hub=True) as bootstrap, _store() as store:
        report = reconcile(
            store,
            audit_registry(settings),
            bootstrap,
            subscriptions,
            now=datetime.now(UTC),
            delivery_retention_days=settings.delivery_retention_days,
        )
    click.echo(
        f"{report.audit_on_topic} decisions on the audit topic, {report.decisions_in_store} in the "
        f"store, {report.signals} signals, {report.deliveries} deliveries "
        f"({report.duplicate_deliveries} repeated)"
    )
    for incident in read_incidents(settings.state_dir):
        click.echo(f"  WARNING {incident.describe()}: what it held then cannot be reconciled")
    for gap in report.gaps:
        click.echo(f"  {gap}")
    if not report.complete:
        click.echo(f"Error: {len(report.gaps)} gaps — see above", err=True)
        sys.exit(1)
    click.echo("no gaps")


@audit_group.command()
@click.argument("identifier")
@click.option("--include-refusals", is_flag=True, help="Also list denied and failed decisions.")
@click.option("--format", "fmt", type=_FORMATS, default="text", show_default=True)
def subject(identifier: str, include_refusals: bool, fmt: str) -> None:
    """Every disclosure about one person (IDENTIFIER is the BSN; it is never stored)."""
    if not is_bsn(identifier):
        raise click.BadParameter("IDENTIFIER must be a BSN (nine digits)", param_hint="IDENTIFIER")
    refs = subject_refs_for(current_settings(), identifier)
    with _store() as store:
        rows = subject_disclosures(store, refs, include_refusals=include_refusals)
    _emit(rows, fmt, refs)


@audit_group.command()
@click.option("--subscriber")
@click.option("--signal-type")
@click.option("--since", type=click.DateTime(), help="Decided at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Decided before (UTC).")
@click.option("--decision", type=click.Choice(OUTCOMES))
@click.option("--format", "fmt", type=_FORMATS, default="text", show_default=True)
def query(
    subscriber: str | None,
    signal_type: str | None,
    since: datetime | None,
    until: datetime | None,
    decision: str | None,
    fmt: str,
) -> None:
    """Decisions by subscriber, signal type, time and outcome; export as CSV or JSON Lines."""
    filters = AuditQuery(
        subscriber=subscriber,
        signal_type=signal_type,
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
        outcome=decision,
    )
    with _store() as store:
        rows = find(store, filters)
    _emit(rows, fmt, None)


@audit_group.command()
@click.option("--follow", is_flag=True, help="Keep consuming until interrupted.")
@click.option("--replay", is_flag=True, help="Read the topic from its start (the store de-dups).")
def ingest(follow: bool, replay: bool) -> None:
    """Consume the audit topic into the store (at-least-once, idempotent)."""
    from signalhub.broker.connect import connect

    settings = current_settings()
    with connect(settings, require_hub=True) as bootstrap, _store() as store:
        ingestor = AuditIngestor(
            store, audit_registry(settings), bootstrap, group=settings.audit_group
        )
        report = ingestor.run(follow=follow, replay=replay)
    click.echo(
        f"{report.read} read ({report.decisions} decisions), {report.inserted} stored, "
        f"{report.duplicates} already stored, "
        f"{len(report.undecodable)} undecodable"
    )
    for where in report.undecodable:
        click.echo(f"  undecodable: {where}")


@click.group("retention")
def retention_command() -> None:
    """Remove expired audit rows and topic records, and record what was removed."""


@retention_command.command(name="run")
def retention_run() -> None:
    """Apply the configured retention periods now (see docs/audit.md)."""
    from signalhub.broker.connect import connect

    settings = current_settings()
    plan = RetentionPlan.from_settings(settings)
    with connect(settings) as bootstrap, _store() as store:
        report = run_retention(store, plan, now=datetime.now(UTC), bootstrap_servers=bootstrap)
    click.echo(
        f"audit store: {report.audit_removed} rows removed "
        f"({', '.join(f'seq {r.first_seq}..{r.last_seq}' for r in report.audit_ranges) or '-'}); "
        f"recorded as seq {report.entry_seq}"
    )
    for outcome in report.topics:
        if outcome.expired or outcome.status != "nothing_expired":
            click.echo(
                f"  {outcome.topic}[{outcome.partition}]: {outcome.expired} of {outcome.records} "
                f"expired — {outcome.status}{': ' + outcome.detail if outcome.detail else ''}"
            )


def _emit(rows: Sequence[StoredRecord], fmt: str, refs: Sequence[str] | None) -> None:
    out = click.get_text_stream("stdout")
    lines = (to_ldv(row, refs) for row in rows)
    if fmt == "jsonl":
        write_jsonl(lines, out)
    elif fmt == "csv":
        write_csv(lines, out)
    else:
        for row in rows:
            click.echo(_text_line(row.record, row.seq))
        click.echo(f"{len(rows)} records")


def _text_line(record: dict[str, Any], seq: int) -> str:
    fields = ", ".join(record.get("fields_clear") or []) or "-"
    general = ", ".join(record.get("fields_generalised") or []) or "-"
    pseudo = ", ".join(record.get("fields_pseudonymised") or []) or "-"
    return (
        f"#{seq} {record['decided_at']} {record['outcome']:<5} {record['subscriber']} "
        f"({record['purpose']}; {record['legal_basis']}) signal {record['signal_id']} "
        f"{record['signal_type']} clear: {fields} generalised: {general} "
        f"pseudonymised: {pseudo} "
        f"policy {record['policy_version'][:12]}"
    )
