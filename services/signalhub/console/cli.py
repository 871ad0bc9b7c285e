"""``signalhub console``: serve the console on its own, and manage its users.

``signalhub up`` serves the console with everything else; ``console serve`` is for a hub whose
broker and enforcer already run elsewhere (set ``SIGNALHUB_BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

from contextlib import ExitStack

import click

from signalhub.cli import current_settings

__all__ = ["console_group"]


@click.group("console")
def console_group() -> None:
    """The web console (operators, security officers, auditors); see docs/console.md."""


@console_group.command("serve")
def serve_command() -> None:
    """Serve the console (and /metrics, /healthz, /readyz) on SIGNALHUB_HTTP_HOST:PORT."""
    import uvicorn

    from signalhub.broker.connect import connect
    from signalhub.console.app import console_app
    from signalhub.net import check_port_free

    settings = current_settings()
    check_port_free(settings.http_host, settings.http_port)
    with connect(settings) as bootstrap, ExitStack() as stack:
        app = console_app(settings, bootstrap, stack)
        click.echo(f"console on http://{settings.http_host}:{settings.http_port}/console/")
        config = uvicorn.Config(
            app, host=settings.http_host, port=settings.http_port, log_level="warning"
        )
        uvicorn.Server(config).run()


@console_group.group("user")
def user_group() -> None:
    """Console users and their roles (operator, security_officer, auditor)."""


@user_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["operator", "security_officer", "auditor"]),
    help="What the user may do.",
)
@click.password_option(help="The password (prompted for when not given; at least 10 characters).")
def add_command(name: str, role: str, password: str) -> None:
    """Add user NAME with ROLE (or replace its role and password)."""
    from signalhub.console.auth import UserStore

    store = UserStore.in_state_dir(current_settings().state_dir)
    user = store.add(name, role, password)
    click.echo(f"user {user.name} ({user.role}) saved in {store.path}")


@user_group.command("list")
def list_command() -> None:
    """Every console user and role."""
    from signalhub.console.auth import UserStore

    users = UserStore.in_state_dir(current_settings().state_dir).list()
    if not users:
        click.echo("no console users — add one with `signalhub console user add NAME --role ROLE`")
    for user in users:
        click.echo(f"{user.name:<24} {user.role:<18} since {user.created_at}")
