"""The ``signalhub`` command line: the edge where settings are read, errors printed, logs set up.

Every command lives in the ``cli`` module of the package it drives and is thin: it takes the
settings from :func:`current_settings`, calls the module that does the work and turns a
:class:`~signalhub.errors.SignalhubError` into ``Error: what happened — what to do`` and a
non-zero exit (:func:`fail`, or :func:`main` for what a command lets through). This module holds
only the root group, the map of those commands and these two helpers, so a package's commands
may import it without a cycle.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import NoReturn

import click

from signalhub.broker.clients import KafkaSecurity, use_kafka_security
from signalhub.config import Settings, load_settings
from signalhub.errors import SignalhubError

__all__ = ["cli", "current_settings", "fail", "main"]

#: Every command, as ``module:attribute`` of its package's ``cli`` module. They are imported
#: when used (or listed by ``--help``), so ``signalhub enforcer`` does not load the
#: console, the audit store and the rest (~14 MB and 0.3 s less per worker).
_LAZY_COMMANDS = {
    "audit": "signalhub.audit.cli:audit_group",
    "bundler": "signalhub.bundling.cli:bundler_command",
    "connector": "signalhub.connector.cli:connector_group",
    "console": "signalhub.console.cli:console_group",
    "demo": "signalhub.apps.cli:demo",
    "enforcer": "signalhub.apps.cli:enforcer",
    "hit-no-hit": "signalhub.bundling.cli:hit_no_hit_command",
    "kafka": "signalhub.apps.cli:kafka_group",
    "keys": "signalhub.pseudonym.cli:keys_group",
    "policy": "signalhub.policy.cli:policy_group",
    "reidentify": "signalhub.pseudonym.cli:reidentify_group",
    "retention": "signalhub.audit.cli:retention_command",
    "run": "signalhub.apps.cli:run",
    "schemas": "signalhub.schema.cli:schemas_group",
    "serve": "signalhub.apps.cli:serve",
    "status": "signalhub.apps.cli:status",
    "subscribe": "signalhub.delivery.cli:subscribe",
    "subscriber": "signalhub.delivery.cli:subscriber_group",
    "up": "signalhub.apps.cli:up",
    "wijkbeeld": "signalhub.bundling.cli:wijkbeeld_command",
}


class _LazyGroup(click.Group):
    """A group whose :data:`_LAZY_COMMANDS` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_COMMANDS:
            module, attribute = _LAZY_COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{_LAZY_COMMANDS[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="signalhub")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """signalhub: share public-safety signals, only as far as law and covenant allow.

    Agency connectors publish Avro signals to Kafka; the enforcer applies the OPA data-sharing
    policy, pseudonymises identifiers per subscriber domain and delivers to each subscriber only
    the fields it may see, with an audit record for every decision.
    """
    os.umask(0o077)  # state, logs, rejects and outputs hold personal data: owner-only
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = _load_settings()


def current_settings() -> Settings:
    """The settings of this invocation, for every command: read once, shared by all its steps.

    Under ``signalhub`` the root group has read them. A group invoked on its own (as tests do)
    finds them in its ``obj``, or finds none: then they are read here and kept on the root
    context, so later steps of the same invocation see the same values.
    """
    ctx = click.get_current_context()
    found = ctx.find_object(Settings)
    if found is None:
        found = _load_settings()
        root = ctx.find_root()
        if root.obj is None:
            root.obj = found
    return found


def _load_settings() -> Settings:
    """This invocation's settings; its Kafka identity (TLS, SASL) is taken from them here."""
    settings = load_settings()
    use_kafka_security(KafkaSecurity.from_settings(settings))
    return settings


def fail(exc: SignalhubError) -> NoReturn:
    """Print ``Error: what happened — what to do`` and exit 1, also outside :func:`main`."""
    click.echo(f"Error: {exc}", err=True)
    raise SystemExit(1)


def main() -> None:
    """Console-script entry point."""
    os.umask(0o077)  # before anything is written, and inherited by every role it starts
    try:
        exit_code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SignalhubError as exc:
        fail(exc)
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(exit_code, int) and exit_code:
        sys.exit(exit_code)
