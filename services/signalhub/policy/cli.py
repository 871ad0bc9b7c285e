"""``signalhub policy``: check, test, dry-run, publish, roll back and explain the sharing policy.

Mounted on the main CLI (``cli._LAZY_COMMANDS``). An edge: it reads the settings, calls the
policy modules and prints; a :class:`~signalhub.errors.SignalhubError` becomes
``Error: what happened — what to do`` and a non-zero exit (in :func:`signalhub.cli.main`).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from signalhub.cli import current_settings
from signalhub.config import Settings

__all__ = ["policy_group"]


_F = TypeVar("_F", bound=Callable[..., Any])


def _dir_option(
    help_text: str = "Policy directory (default: policies/ under SIGNALHUB_HOME).",
) -> Callable[[_F], _F]:
    return click.option(
        "--dir", "policies_dir", type=click.Path(file_okay=False, path_type=Path), help=help_text
    )


def _today(value: str | None) -> date:
    try:
        return date.fromisoformat(value) if value else date.today()
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a YYYY-MM-DD date") from exc


def _context(settings: Settings) -> tuple[Any, Any]:
    from signalhub.schema.registry import SchemaRegistry
    from signalhub.subscriptions import by_signal_type, load_subscriptions

    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    subs = load_subscriptions(settings.subscriptions_file, registry.signal_types())
    return registry, by_signal_type(subs)


@click.group("policy")
def policy_group() -> None:
    """Write, test, dry-run and publish the data-sharing policy (see docs/policies.md)."""


@policy_group.command("check")
@_dir_option()
def check_command(policies_dir: Path | None) -> None:
    """Parse and type-check the Rego and data files; errors with file:line."""
    from signalhub.policy.engine import check_policies

    root = policies_dir or current_settings().policies_dir
    problems = check_policies(root)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"OK: {root} parses and compiles")


@policy_group.command("test")
@_dir_option()
@click.option(
    "--rego-only", is_flag=True, hidden=True, help="Accepted for old scripts; changes nothing."
)
@click.option("-v", "--verbose", is_flag=True, help="List every test, not only failures.")
def test_command(policies_dir: Path | None, rego_only: bool, verbose: bool) -> None:
    """Run the Rego tests of the policy (with rule coverage) and check every agreement has
    allow and deny tests; non-zero on failure. Tests the policy directory only."""
    from signalhub.policy.rego_tests import RegoCoverage, run_rego_tests, untested_agreements

    root = policies_dir or current_settings().policies_dir
    coverage = RegoCoverage()
    results = run_rego_tests(root, coverage)
    failed = [r for r in results if not r.passed]
    for result in results:
        if verbose or not result.passed:
            status = "PASS" if result.passed else "FAIL"
            note = f" ({result.message})" if result.message else ""
            click.echo(f"data.{result.name}: {status}{note}")
    untested = untested_agreements(root, results)
    for problem in untested:
        click.echo(f"MISSING: {problem}")
    click.echo("-" * 80)
    click.echo(f"{'FAIL' if failed else 'PASS'}: {len(results) - len(failed)}/{len(results)}")
    for module, (covered, total) in coverage.files().items():
        missing = coverage.not_covered(module)
        lines = f"; not covered: lines {', '.join(map(str, missing))}" if missing else ""
        click.echo(f"coverage {module}: {covered}/{total} lines{lines}")
    click.echo(f"coverage of the policy rules: {coverage.percent():.1f}%")
    if failed or untested:
        raise SystemExit(1)


@policy_group.command("diff")
@click.option(
    "--candidate",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The candidate policy directory.",
)
@click.option("--traffic", default="topic", help="A JSONL file of decoded signals, or 'topic'.")
@click.option("--today", help="Decide as of this date (YYYY-MM-DD; default today).")
def diff_command(candidate: Path, traffic: str, today: str | None) -> None:
    """Dry-run CANDIDATE against the policy in force on recorded signals; fields that change.

    With --traffic topic (the default) the signals are read from the Kafka in
    SIGNALHUB_BOOTSTRAP_SERVERS or from the embedded broker of a running ``signalhub up``.
    """
    from signalhub.broker.connect import connect
    from signalhub.broker.probe import check_reachable
    from signalhub.policy.diff import diff_policies, read_traffic_file, read_traffic_topics
    from signalhub.policy.engine import EmbeddedPolicyEngine
    from signalhub.policy.lifecycle import policy_in_force

    settings = current_settings()
    registry, subscriptions = _context(settings)
    after = EmbeddedPolicyEngine.from_dir(candidate)
    day = _today(today)
    if traffic == "topic":
        with connect(settings, require_hub=True) as bootstrap:
            before = policy_in_force(settings, bootstrap)
            signals = list(read_traffic_topics(bootstrap, registry))
    else:
        if not settings.embedded:
            check_reachable(settings.bootstrap_servers)
        before = policy_in_force(settings, settings.bootstrap_servers or None)
        signals = list(read_traffic_file(Path(traffic)))
    report = diff_policies(registry, subscriptions, before, after, signals, day)
    click.echo(report.render())


@policy_group.command("publish")
@click.option("-m", "--message", required=True, help="What changed and why.")
@click.option("--author", default=None, help="Who publishes (default: the login name).")
@_dir_option()
def publish_command(message: str, author: str | None, policies_dir: Path | None) -> None:
    """Check, test and publish the policy; every enforcer switches to it without a restart."""
    from signalhub.broker.connect import connect
    from signalhub.policy.lifecycle import publish_policy

    settings = current_settings()
    with connect(settings) as bootstrap:
        event = publish_policy(
            settings,
            bootstrap,
            policies_dir or settings.policies_dir,
            message=message,
            author=author or getpass.getuser(),
            today=date.today(),
        )
    click.echo(f"published {event.version} by {event.author} at {event.at}: {event.message}")


@policy_group.command("history")
def history_command() -> None:
    """Every published version and rollback, oldest first."""
    from signalhub.policy.store import PolicyStore

    events = PolicyStore.in_state_dir(current_settings().state_dir).history()
    if not events:
        click.echo("no policy version published yet")
    for event in events:
        click.echo(
            f"{event.seq:>4}  {event.version}  {event.action:<8}  {event.at}  "
            f"{event.author}: {event.message}"
        )


@policy_group.command("rollback")
@click.argument("version")
@click.option("-m", "--message", default="", help="Why (default: 'rollback to VERSION').")
@click.option("--author", default=None, help="Who rolls back (default: the login name).")
def rollback_command(version: str, message: str, author: str | None) -> None:
    """Put an earlier published VERSION (hash or unique prefix) back in force."""
    from signalhub.broker.connect import connect
    from signalhub.policy.lifecycle import rollback_policy

    settings = current_settings()
    with connect(settings) as bootstrap:
        event = rollback_policy(
            settings, bootstrap, version, author=author or getpass.getuser(), message=message
        )
    click.echo(f"rolled back: {event.version} is in force ({event.message})")


@policy_group.command("matrix")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json", "html"]), default="text")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@_dir_option("Evaluate this policy directory instead of the version in force.")
@click.option("--today", help="Decide as of this date (YYYY-MM-DD; default today).")
def matrix_command(
    fmt: str, output: Path | None, policies_dir: Path | None, today: str | None
) -> None:
    """Who sees what: per subscriber, signal type, source and field, clear / generalised /
    pseudonymised / withheld, with the legal basis."""
    from signalhub.apps.publishers import publishing_agencies
    from signalhub.policy.engine import EmbeddedPolicyEngine
    from signalhub.policy.lifecycle import policy_in_force
    from signalhub.policy.matrix import (
        policy_matrix,
        render_csv,
        render_html,
        render_json,
        render_text,
    )

    settings = current_settings()
    registry, subscriptions = _context(settings)
    engine = (
        EmbeddedPolicyEngine.from_dir(policies_dir)
        if policies_dir
        else policy_in_force(settings, settings.bootstrap_servers or None)
    )
    sources = publishing_agencies(settings.connectors_dir)
    rows = policy_matrix(registry, subscriptions, engine, _today(today), sources=sources)
    if fmt == "csv":
        text = render_csv(rows)
    elif fmt == "json":
        text = render_json(rows, version=engine.version)
    elif fmt == "html":
        text = render_html(rows, version=engine.version)
    else:
        text = f"policy {engine.version}\n" + render_text(rows)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, "utf-8")
        click.echo(f"wrote {output}")


@policy_group.command("conformance")
@click.option("--url", default=None, help="An OPA server to compare with (default: a local one).")
@click.option("--upload", is_flag=True, help="Upload the policy to --url first.")
@_dir_option()
@click.option("--today", help="Decide as of this date (YYYY-MM-DD; default today).")
def conformance_command(
    url: str | None, upload: bool, policies_dir: Path | None, today: str | None
) -> None:
    """Run the attribute corpus through the embedded engine and an OPA server; any difference?"""
    from signalhub.policy.bundle import bundle_from_dir
    from signalhub.policy.corpus import compare_engines, policy_corpus
    from signalhub.policy.engine import EmbeddedPolicyEngine
    from signalhub.policy.opa_backend import OpaServerPolicyEngine, opa_client_for, upload_policy
    from signalhub.policy.rest_server import PolicyServer

    settings = current_settings()
    root = policies_dir or settings.policies_dir
    registry, subscriptions = _context(settings)
    embedded = EmbeddedPolicyEngine.from_dir(root)
    bundle = bundle_from_dir(root)
    local = None if url else PolicyServer().start()
    try:
        client = opa_client_for(
            url or (local.url if local else ""), timeout_s=settings.opa_timeout_s
        )
        if local is not None or upload:
            upload_policy(client, bundle.files)
        server = OpaServerPolicyEngine(client, bundle.version)
        cases = policy_corpus(registry, subscriptions, _today(today))
        compared, differences = compare_engines(embedded, server, cases)
    finally:
        if local is not None:
            local.stop()
    target = url or f"local OPA-REST server ({local.url if local else ''})"
    for case, what in differences[:20]:
        click.echo(f"DIFF {case.signal_type} {dict(case.attributes)}: {what}", err=True)
    click.echo(
        f"{compared} inputs through the embedded engine and {target}: "
        f"{len(differences)} difference(s)"
    )
    if differences:
        raise SystemExit(1)


@policy_group.command("retry-parked")
@click.option("--today", help="Decide as of this date (YYYY-MM-DD; default today).")
def retry_parked_command(today: str | None) -> None:
    """Send parked signals back through the enforcer once the policy in force decides them."""
    from signalhub.broker.connect import connect
    from signalhub.enforcer.parked import RetryState, retry_parked
    from signalhub.policy.lifecycle import policy_in_force

    settings = current_settings()
    registry, subscriptions = _context(settings)
    with connect(settings) as bootstrap:
        policy = policy_in_force(settings, bootstrap)
        report = retry_parked(
            bootstrap,
            registry,
            subscriptions,
            policy,
            RetryState.in_state_dir(settings.state_dir),
            _today(today),
        )
    click.echo(
        f"policy {policy.version}: {len(report.republished)} parked signal(s) sent back, "
        f"{len(report.still_failing)} still failing, {report.already_retried} retried before"
    )
    for where, why in report.still_failing:
        click.echo(f"  still failing {where}: {why}", err=True)
    if report.still_failing:
        raise SystemExit(1)


@policy_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8181, show_default=True, type=int)
@_dir_option()
def serve_command(host: str, port: int, policies_dir: Path | None) -> None:
    """Serve the policy over OPA's REST API (a stand-in for the OPA server) until stopped."""
    from signalhub.policy.rest_server import PolicyServer

    server = PolicyServer(host, port)
    server.load_dir(policies_dir or current_settings().policies_dir)
    click.echo(f"serving the policy on {server.url} (OPA REST API v1); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
