"""``signalhub connector ...``: list the agency connectors and run one.

Mounted lazily on the root command (:mod:`signalhub.cli`). This is an edge: it reads the
settings, builds the source, publisher and reject file, and turns a
:class:`~signalhub.errors.SignalhubError` into ``Error: what happened — what to do`` and exit 1.
A run that completes exits 0 even when it rejected records: the count is on stdout and the
rejects in their file. A dry run writes no file at all, so its rejects go to stderr (reference,
code and reason; never the record).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from signalhub.cli import current_settings, fail
from signalhub.config import Settings
from signalhub.connector import (
    CollectingPublisher,
    ConnectorDefinition,
    ConnectorRunner,
    KafkaPublisher,
    Publisher,
    Reject,
    RejectFile,
    RejectList,
    RunReport,
    Source,
    load_definitions,
    open_source,
)
from signalhub.connector.mapping import ObservedWindow
from signalhub.errors import ConnectorError, SignalhubError
from signalhub.schema.registry import SchemaRegistry

__all__ = ["connector_group"]


@click.group("connector")
def connector_group() -> None:
    """Agency connectors: map each agency's records to signals and publish them."""


@connector_group.command("list")
def list_command() -> None:
    """Show every connector definition, its sources and the signal types it produces."""
    settings = current_settings()
    try:
        definitions = load_definitions(settings.connectors_dir)
    except SignalhubError as exc:
        fail(exc)
    for name, definition in definitions.items():
        kinds = ", ".join(source.kind for source in definition.sources)
        click.echo(f"{name:<20} {definition.title}")
        click.echo(f"{'':<20} sources: {kinds}")
        click.echo(f"{'':<20} signals: {', '.join(definition.signal_types())}")


@connector_group.command("run")
@click.argument("name")
@click.option(
    "--source",
    "location",
    default=None,
    help="File (.csv, .jsonl) or SQL URL (postgresql://..., sqlite:///path). "
    "Default: the connector's sample.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON Lines file the rejected records are appended to "
    "(default: <state dir>/rejects/<name>.jsonl).",
)
@click.option(
    "--bootstrap-servers",
    default=None,
    help="Kafka to publish to (default: SIGNALHUB_BOOTSTRAP_SERVERS, else the running hub's).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file keeping SQL watermarks (default: <state dir>/connector-watermarks.sqlite).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Map and validate only: publish nothing, write no file; rejects go to stderr.",
)
def run_command(
    name: str,
    location: str | None,
    rejects: Path | None,
    bootstrap_servers: str | None,
    state: Path | None,
    dry_run: bool,
) -> None:
    """Run connector NAME once over its source: publish what maps, reject what does not.

    Publishes to the Kafka in --bootstrap-servers or SIGNALHUB_BOOTSTRAP_SERVERS, or to the
    embedded broker of a running ``signalhub up`` (the same state directory).
    """
    from signalhub.broker.connect import connect

    settings = current_settings()
    try:
        definitions = load_definitions(settings.connectors_dir)
        definition = definitions.get(name)
        if definition is None:
            raise ConnectorError(
                f"no connector named {name!r} — choose one of: {', '.join(definitions)}"
            )
        registry = SchemaRegistry.from_dir(settings.schemas_dir)
        where = location or _sample_location(definition, settings)
        source = open_source(definition, where, state or settings)
        reject_file = rejects or settings.state_dir / "rejects" / f"{name}.jsonl"
        if bootstrap_servers:
            settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
        with contextlib.ExitStack() as stack:
            publisher: Publisher
            if dry_run:
                publisher = CollectingPublisher()
            else:
                servers = stack.enter_context(connect(settings, require_hub=True))
                publisher = KafkaPublisher(servers, client_id=f"signalhub-connector-{name}")
            stack.callback(publisher.close)
            sink = RejectList() if dry_run else RejectFile(reject_file)
            report = _run(definition, registry, publisher, source, sink, settings, dry_run)
    except SignalhubError as exc:
        fail(exc)
    if isinstance(sink, RejectList):
        _show_rejects(sink.rejects)
    verb = "mapped (dry run)" if dry_run else "published"
    click.echo(
        f"{name}: read {report.read}, {verb} {report.published}, rejected {report.rejected}"
        + (f" (see {reject_file})" if report.rejected and not dry_run else "")
    )


def _run(
    definition: ConnectorDefinition,
    registry: SchemaRegistry,
    publisher: Publisher,
    source: Source,
    rejects: RejectFile | RejectList,
    settings: Settings,
    dry_run: bool,
) -> RunReport:
    runner = ConnectorRunner(
        definition,
        registry,
        publisher,
        rejects=rejects,
        max_record_bytes=settings.max_record_bytes,
        window=ObservedWindow.from_settings(settings),
    )
    return runner.run(source, commit=not dry_run)


def _show_rejects(rejects: list[Reject]) -> None:
    """One line per reject on stderr: where, which code, why (reasons quote no personal data)."""
    for reject in rejects:
        click.echo(f"rejected {reject.ref} ({reject.code}): {reject.reason}", err=True)


def _sample_location(definition: ConnectorDefinition, settings: Settings) -> str:
    for spec in definition.sources:
        if spec.sample:
            path = settings.connectors_dir / spec.sample
            return f"sqlite:///{path}" if spec.kind == "sql" else str(path)
    raise ConnectorError(f"connector {definition.name!r} has no sample — pass --source")
