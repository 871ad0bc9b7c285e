"""The runnable roles: ``demo``, ``up``, ``enforcer``, ``serve``, ``status`` to check on them, and
``kafka`` for what the roles need from a production Kafka.

Each command starts what it runs only when it runs (imports inside the command), so a worker
started as ``signalhub enforcer`` loads the enforcer and not the console or the audit store.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from signalhub.apps.roles import ROLES
from signalhub.cli import current_settings

if TYPE_CHECKING:
    from signalhub.apps.demo import DemoReport
    from signalhub.delivery.reader import DeliveredRecord

__all__ = [
    "demo",
    "enforcer",
    "kafka_group",
    "render_alert",
    "render_delivery",
    "render_sources",
    "run",
    "serve",
    "status",
    "up",
]

_PAYLOAD_PREVIEW = 6


@click.command()
@click.option(
    "--input",
    "input_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Take the agency files from DIR (<agency>.csv|.jsonl|.sqlite) instead of the samples.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write OUT/<subscriber>.jsonl, dlq.jsonl, rejects.jsonl and audit.jsonl.",
)
@click.option("--limit", default=3, show_default=True, help="Deliveries shown per subscriber.")
def demo(input_dir: Path | None, out_dir: Path | None, limit: int) -> None:
    """Run the whole hub once over the sample data and show who received what.

    Starts the embedded broker, an enforcer worker and the bundler, runs every agency
    connector, waits until every signal is accounted for and bundled, prints per subscriber what
    it received (pseudonyms and withheld fields visible), the casework alerts the bundler raised,
    the dead letters and rejects with their reasons, and a summary. Stops everything it started.
    """
    from signalhub.apps.demo import run_demo

    settings = current_settings()
    echo = _progress
    echo("signalhub demo: starting the embedded stack")
    report = run_demo(settings, echo, input_dir, out_dir)
    click.echo("")
    for subscriber, records in sorted(report.deliveries.items()):
        click.secho(f"== {subscriber}: {len(records)} deliveries", bold=True)
        for record in records[:limit]:
            click.echo("   " + render_delivery(record))
        if len(records) > limit:
            click.echo(f"   ... and {len(records) - limit} more")
    alerts = report.alerts()
    click.secho(f"== casework alerts (bundler): {len(report.alert_ids)}", bold=True)
    for signal_id in report.alert_ids:
        alert = alerts.get(signal_id)
        click.echo("   " + (render_alert(alert) if alert else f"{signal_id[:8]}: not delivered"))
    click.secho(f"== dead-letter topic: {len(report.dead_letters)} records", bold=True)
    for dead in report.dead_letters:
        click.echo(f"   {dead['source']}: {dead['reason']} — {dead['detail']}")
    click.secho(f"== rejects (kept by the connectors): {len(report.rejects)} records", bold=True)
    for reject in report.rejects:
        click.echo(f"   {reject.agency} {reject.ref}: {reject.code} — {reject.reason}")
    click.secho("== per source: records, and the policy's decisions on its signals", bold=True)
    for line in render_sources(report):
        click.echo("   " + line)
    outcomes = report.outcomes()
    delivered = sum(len(records) for records in report.deliveries.values())
    click.secho("== summary", bold=True)
    click.echo(
        f"   {sum(run.read for run in report.runs)} records read, "
        f"{report.published} signals published, {len(report.rejects)} rejected, "
        f"{len(report.dead_letters)} dead letters, {len(report.alert_ids)} casework alerts"
    )
    click.echo(
        f"   {sum(outcomes.values())} decisions: {outcomes['allow']} allowed, "
        f"{outcomes['deny']} denied, {outcomes['error']} errors; "
        f"{delivered} deliveries to {len(report.deliveries)} subscribers"
    )
    if out_dir is not None:
        click.echo(f"   written to {out_dir}/")


def render_sources(report: DemoReport) -> list[str]:
    """One line per connector, and one for the bundler's alerts: the accounting (read =
    published + rejected) and what the policy decided on those signals, counted per
    subscription (a delivery per allow, a withheld copy per deny); the lines add up to the
    summary's decisions."""
    outcomes: dict[str, Counter[str]] = {}
    for row in report.audit:
        outcomes.setdefault(str(row["signal_id"]), Counter())[str(row["outcome"])] += 1
    lines: list[str] = []
    for name in sorted({run.connector for run in report.runs}):
        runs = [run for run in report.runs if run.connector == name]
        decided: Counter[str] = Counter()
        for run in runs:
            for signal_id in run.signal_ids:
                decided += outcomes.get(signal_id, Counter())
        lines.append(
            f"{name}: {sum(r.read for r in runs)} read = {sum(r.published for r in runs)} "
            f"published + {sum(r.rejected for r in runs)} rejected; "
            f"{decided['allow']} delivered, {decided['deny']} withheld by policy"
        )
    alerts: Counter[str] = Counter()
    for signal_id in report.alert_ids:
        alerts += outcomes.get(signal_id, Counter())
    lines.append(
        f"bundler: {len(report.alert_ids)} casework alerts; "
        f"{alerts['allow']} delivered, {alerts['deny']} withheld by policy"
    )
    return lines


def render_delivery(record: DeliveredRecord) -> str:
    """One line: type, delivery id, clear fields, generalised ones with their method,
    pseudonyms (shortened) and withheld names."""
    payload = record.record.get("payload") or {}
    delivery = record.record.get("delivery") or {}
    pseudonymised = set(record.pseudonymised_fields())
    generalised = record.generalised_fields()
    shown = []
    for name, value in payload.items():
        if value is None:
            continue
        text = f"{value[:14]}…" if name in pseudonymised and isinstance(value, str) else repr(value)
        if name in generalised:
            text += f"({generalised[name]})"
        shown.append(f"{name}={text}")
    withheld = delivery.get("withheld") or []
    more = f" (+{len(shown) - _PAYLOAD_PREVIEW} more)" if len(shown) > _PAYLOAD_PREVIEW else ""
    return (
        f"{record.signal_type} {record.delivery_id[:8]} "
        f"{' '.join(shown[:_PAYLOAD_PREVIEW])}{more} | withheld: {', '.join(withheld) or '-'}"
    )


def render_alert(record: DeliveredRecord) -> str:
    """One casework alert as delivered: bundle (the receiving domain's id of it), rule,
    contributing agencies and types, span; no content."""
    payload = record.record.get("payload") or {}
    first, last = str(payload.get("first_observed")), str(payload.get("last_observed"))
    try:
        days = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days
        span = f"{first[:10]} .. {last[:10]} ({days} days)"
    except ValueError:
        span = f"{first} .. {last}"
    return (
        f"{payload.get('subject_kind')} bundle {str(payload.get('bundle_id'))[:8]} "
        f"revision {payload.get('revision')}: rule {payload.get('rule')} — "
        f"{payload.get('signal_count')} signals from {', '.join(payload.get('agencies') or [])} "
        f"({', '.join(payload.get('signal_types') or [])}), {span} → zvh"
    )


def _progress(line: str) -> None:
    click.echo(line, err=not sys.stdout.isatty())


@click.command()
def up() -> None:
    """Run the hub until stopped: every role as its own process, supervised.

    The roles: the embedded broker (unless SIGNALHUB_BOOTSTRAP_SERVERS names a Kafka), the
    enforcer, the bundler, audit ingest, the webhook pushers and the HTTP service on
    SIGNALHUB_HTTP_HOST:SIGNALHUB_HTTP_PORT (console, ingest, pull API, /readyz). A role that
    exits is restarted with backoff; one that keeps exiting stops the hub with its log's tail.
    Logs: <state_dir>/logs/ROLE.log. Ctrl-C stops everything.
    """
    from signalhub.apps.demo import prepare_settings, private_state_dir
    from signalhub.apps.supervisor import Supervisor
    from signalhub.net import check_port_free

    settings = prepare_settings(current_settings())
    private_state_dir(settings.state_dir, lambda line: click.echo(line.strip(), err=True))
    check_port_free(settings.http_host, settings.http_port)
    if settings.embedded and settings.broker_storage == "memory":
        click.secho(
            "WARNING: the embedded broker keeps its topics in memory "
            "(SIGNALHUB_BROKER_STORAGE=memory, the default): a restart of the broker or of "
            "the hub loses every signal, delivery and audit record it has not yet passed on. "
            "SIGNALHUB_BROKER_STORAGE=durable keeps them, within the limit in "
            "docs/operations.md; for production, point SIGNALHUB_BOOTSTRAP_SERVERS at Kafka.",
            fg="yellow",
            err=True,
        )
    supervisor = Supervisor(settings, click.echo)
    click.echo(f"signalhub starting: logs in {settings.state_dir / 'logs'}")
    raise SystemExit(supervisor.run())


@click.command("run")
@click.argument("role", type=click.Choice(ROLES))
def run(role: str) -> None:
    """Run one ROLE of the hub until stopped (what `signalhub up` and docker-compose.yml run).

    Kafka clients use SIGNALHUB_BOOTSTRAP_SERVERS, else the broker of a running `signalhub up`,
    else an embedded broker of their own.
    """
    from signalhub.apps.roles import run_role

    run_role(role, current_settings())


@click.command()
def enforcer() -> None:
    """Run one enforcer worker until stopped (the same as `signalhub run enforcer`).

    Start several against the same Kafka to share the partitions of the signal topics.
    """
    from signalhub.apps.roles import run_role

    run_role("enforcer", current_settings())


@click.command()
def serve() -> None:
    """Serve the hub's HTTP service until stopped (the same as `signalhub run http`)."""
    from signalhub.apps.roles import run_role

    run_role("http", current_settings())


@click.command("status")
@click.option("--url", default=None, help="The hub's HTTP address (default: from the settings).")
def status(url: str | None) -> None:
    """Print the hub's health: broker, enforcer, policy and lag (non-zero exit when not ready)."""
    import httpx

    from signalhub.apps.status import HealthReport, local_health

    settings = current_settings()
    base = url or f"http://{settings.http_host}:{settings.http_port}"
    try:
        response = httpx.get(f"{base.rstrip('/')}/readyz", timeout=5.0)
        report = HealthReport.from_json(response.json())
        source = f"from {base}/readyz"
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        report = local_health(settings)
        source = f"checked locally: nothing answered at {base}"
    click.echo(report.render())
    click.echo(f"  ({source})")
    if not report.ready:
        raise SystemExit(1)


#: How the committed deploy/kafka/init.sh is regenerated (docker-compose.yml's partitions).
REGENERATE = "SIGNALHUB_PARTITIONS=6 signalhub kafka init-script > deploy/kafka/init.sh"


@click.group("kafka")
def kafka_group() -> None:
    """What the roles need from a production Kafka: topics, users and ACLs, from the code."""


@kafka_group.command("init-script")
def kafka_init_script() -> None:
    """Print the script docker-compose.yml's kafka-init runs: topics, SCRAM users, ACLs.

    Derived from the schemas, connector definitions, subscriptions and settings, the same
    sources the roles read. The committed copy is deploy/kafka/init.sh; regenerate it with
    `SIGNALHUB_PARTITIONS=6 signalhub kafka init-script > deploy/kafka/init.sh`.
    """
    from signalhub.apps.kafka_access import role_access, topology_topics
    from signalhub.apps.kafka_script import init_script
    from signalhub.subscriptions import load_subscriptions

    settings = current_settings()
    subscriptions = load_subscriptions(settings.subscriptions_file)
    header = [
        "Generated from the code (signalhub.apps.kafka_access): do not edit, regenerate with",
        f"  {REGENERATE}",
        "docker-compose.yml's kafka-init runs it beside the broker (localhost:19092).",
        f"Inputs: partitions={settings.partitions}, enforcer group {settings.enforcer_group}, "
        f"bundler group {settings.bundler_group}, audit group {settings.audit_group}.",
    ]
    click.echo(
        init_script(
            topology_topics(settings, subscriptions),
            role_access(settings, subscriptions),
            header,
        ),
        nl=False,
    )


@kafka_group.command("acls")
def kafka_acls() -> None:
    """Print, as a Markdown table, what each Kafka principal may do and why (docs/deployment.md)."""
    from signalhub.apps.kafka_access import role_access
    from signalhub.apps.kafka_script import access_table
    from signalhub.subscriptions import load_subscriptions

    settings = current_settings()
    click.echo(
        access_table(role_access(settings, load_subscriptions(settings.subscriptions_file))),
        nl=False,
    )
