"""``signalhub schemas ...``: check, list, release and document the signal schemas.

Mounted lazily on the root command (:mod:`signalhub.cli`). This is an edge: it turns
:class:`SignalhubError` into ``Error: what happened — what to do`` and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path

import click

from signalhub.cli import current_settings, fail
from signalhub.errors import SignalhubError
from signalhub.schema.compat import check_compatibility, release, released_schemas
from signalhub.schema.doc import render_tables, update_doc
from signalhub.schema.registry import SchemaRegistry

__all__ = ["schemas_group"]

_DIR_OPTION = click.option(
    "--schemas-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with envelope.avsc and <type>.avsc (default: SIGNALHUB_HOME/schemas).",
)


def _schemas_dir(given: Path | None) -> Path:
    return given if given is not None else current_settings().schemas_dir


@click.group("schemas")
def schemas_group() -> None:
    """Check, list and release the signal schemas."""


@schemas_group.command("check")
@_DIR_OPTION
def check_command(schemas_dir: Path | None) -> None:
    """Refuse schema changes that break readers or writers of released versions."""
    try:
        folder = _schemas_dir(schemas_dir)
        problems = check_compatibility(folder)
        SchemaRegistry.from_dir(folder)  # also loads: pii kinds, policy flags, envelope
    except SignalhubError as exc:
        fail(exc)
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"OK: every schema in {folder} is compatible with its released versions")


@schemas_group.command("list")
@_DIR_OPTION
def list_command(schemas_dir: Path | None) -> None:
    """One line per signal type: version, released versions, fingerprint, topic."""
    try:
        folder = _schemas_dir(schemas_dir)
        registry = SchemaRegistry.from_dir(folder)
        released = released_schemas(folder)
    except SignalhubError as exc:
        fail(exc)
    for signal in registry.signals():
        versions = ",".join(f"v{n}" for n in sorted(released.get(signal.signal_type, {})))
        pii = ",".join(f.name for f in signal.pii_fields())
        click.echo(
            f"{signal.signal_type:<24} v{signal.version}  released: {versions or '-':<8} "
            f"fingerprint {signal.fingerprint.hex()}  {signal.topic}  pii: {pii}"
        )


@schemas_group.command("release")
@click.argument("signal_type")
@_DIR_OPTION
def release_command(signal_type: str, schemas_dir: Path | None) -> None:
    """Keep the current SIGNAL_TYPE schema as a released version (after `check` passes)."""
    try:
        path = release(_schemas_dir(schemas_dir), signal_type)
    except SignalhubError as exc:
        fail(exc)
    click.echo(f"released {signal_type} as {path}")


@schemas_group.command("doc")
@_DIR_OPTION
@click.option(
    "--doc",
    "doc_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The catalogue to update (default: the docs/schemas.md beside the schemas folder).",
)
@click.option("--check", is_flag=True, help="Only report whether the catalogue is stale.")
def doc_command(schemas_dir: Path | None, doc_path: Path | None, check: bool) -> None:
    """Regenerate the tables of docs/schemas.md from the schemas."""
    try:
        folder = _schemas_dir(schemas_dir)
        registry = SchemaRegistry.from_dir(folder)
    except SignalhubError as exc:
        fail(exc)
    doc = doc_path if doc_path is not None else folder.parent / "docs" / "schemas.md"
    if not doc.is_file():
        click.echo(f"Error: no catalogue at {doc} — pass --doc PATH", err=True)
        raise SystemExit(1)
    if check:
        if render_tables(registry).strip() not in doc.read_text(encoding="utf-8"):
            click.echo(f"Error: {doc} is stale — run `signalhub schemas doc`", err=True)
            raise SystemExit(1)
        click.echo(f"OK: {doc} matches the schemas")
        return
    changed = update_doc(doc, registry)
    click.echo(f"{doc}: {'updated' if changed else 'up to date'}")
