"""``signalhub bundler``, ``signalhub hit-no-hit`` and ``signalhub wijkbeeld``."""

from __future__ import annotations

from pathlib import Path

import click

from signalhub.cli import current_settings

__all__ = ["bundler_command", "hit_no_hit_command", "wijkbeeld_command"]


@click.command("bundler")
def bundler_command() -> None:
    """Run the bundler until stopped: link signals across agencies, raise casework alerts.

    Reads signals.* with its own consumer group, keeps its state in <state_dir>/bundling.sqlite
    and publishes casework_alert signals (which the enforcer routes by policy).
    """
    from signalhub.broker.connect import connect
    from signalhub.bundling.process import run_bundler

    settings = current_settings()
    with connect(settings) as bootstrap_servers:
        run_bundler(settings, bootstrap_servers)


@click.command("hit-no-hit")
@click.option("--asker", required=True, help="The agency asking (e.g. politie).")
@click.argument("bsn")
def hit_no_hit_command(asker: str, bsn: str) -> None:
    """Is the person with this BSN known to partners of the casework domain? (yes/no + who)

    Allowed only to partners with a casework agreement; every question is logged.
    """
    from signalhub.bundling.service import ask_hit_no_hit

    answer = ask_hit_no_hit(current_settings(), asker, bsn)
    if not answer.allowed:
        raise click.ClickException(
            f"refused — {'; '.join(answer.reasons)} (question logged as #{answer.seq})"
        )
    if answer.known:
        click.echo(f"hit: known to {', '.join(answer.partners)} (logged as #{answer.seq})")
    else:
        click.echo(f"no hit: not known to any partner (logged as #{answer.seq})")


@click.command("wijkbeeld")
@click.option("--format", "fmt", type=click.Choice(["csv", "html"]), default="csv")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def wijkbeeld_command(fmt: str, output: Path | None) -> None:
    """Signals per neighbourhood × type × week, counts below SIGNALHUB_WIJKBEELD_K as <k."""
    from signalhub.bundling.service import render_wijkbeeld

    text = render_wijkbeeld(current_settings(), fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
