"""The ``signalhub`` command line: the edge where settings are read, errors printed, logs set up.

Each subcommand is thin: it reads the settings once, calls the module that does the work and
turns a :class:`~signalhub.errors.SignalhubError` into ``Error: what happened — what to do`` and
a non-zero exit.
"""

from __future__ import annotations

import logging
import sys

import click

from signalhub.config import Settings, load_settings
from signalhub.errors import SignalhubError

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="signalhub")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """signalhub: share public-safety signals, only as far as law and covenant allow.

    Agency connectors publish Avro signals to Kafka; the enforcer applies the OPA data-sharing
    policy, pseudonymises identifiers per subscriber domain and delivers to each subscriber only
    the fields it may see, with an audit record for every decision.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = _settings()


def _settings() -> Settings:
    return load_settings()


@cli.command()
def enforcer() -> None:
    """Run one enforcer worker until stopped (reads signals.*, writes deliveries.*, audit, DLQ).

    Start several against the same Kafka to share the partitions of the signal topics.
    Without SIGNALHUB_BOOTSTRAP_SERVERS it starts an embedded broker of its own.
    """
    from signalhub.broker import connect
    from signalhub.enforcer import run_enforcer

    settings = click.get_current_context().obj
    with connect(settings) as bootstrap_servers:
        run_enforcer(settings, bootstrap_servers)


@cli.command()
def serve() -> None:
    """Serve the hub's HTTP API only (ingest, pull API, health), against the configured Kafka.

    For deployments where the enforcer runs as its own service (docker-compose.yml).
    """
    from signalhub.broker import connect
    from signalhub.serve import serve_http

    settings = click.get_current_context().obj
    with connect(settings) as bootstrap_servers:
        serve_http(settings, bootstrap_servers)


def _mount_subcommands() -> None:
    """Attach the command groups that live beside the modules they drive.

    Called by :func:`main`, not at import, so importing this module stays free of side effects.
    """
    from signalhub.audit_store.cli_audit import audit_group, retention_command
    from signalhub.bundling.cli_bundling import (
        bundler_command,
        hit_no_hit_command,
        wijkbeeld_command,
    )
    from signalhub.cli_connector import connector_group
    from signalhub.cli_demo import demo, up
    from signalhub.cli_keys import keys_group
    from signalhub.cli_policy import policy_group
    from signalhub.cli_reidentify import reidentify_group
    from signalhub.cli_schemas import schemas_group
    from signalhub.console.cli_console import console_group
    from signalhub.delivery.cli_delivery import subscribe, subscriber_group
    from signalhub.status import status_command

    for command in (
        demo,
        up,
        connector_group,
        schemas_group,
        policy_group,
        subscribe,
        subscriber_group,
        keys_group,
        reidentify_group,
        audit_group,
        retention_command,
        console_group,
        status_command,
        bundler_command,
        hit_no_hit_command,
        wijkbeeld_command,
    ):
        cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    _mount_subcommands()
    try:
        exit_code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SignalhubError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(exit_code, int) and exit_code:
        sys.exit(exit_code)
