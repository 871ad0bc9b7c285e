"""``signalhub keys ...``: create, rotate and list the pseudonym key ring; export a rotation map.

Mounted on the main CLI through ``cli._LAZY_COMMANDS``. Only the key file is written here
(``SIGNALHUB_KEY_FILE`` or ``<state_dir>/pseudonym.key``, mode 0600); keys from the environment
or a key-provider plug-in are listed but managed where they live. No command prints a key.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import click

from signalhub.config import Settings, load_settings
from signalhub.errors import KeyProviderError, SignalhubError
from signalhub.pseudonym.keys import (
    MIN_KEY_BYTES,
    FileKeyProvider,
    KeyRing,
    key_provider,
    load_key_ring,
)
from signalhub.pseudonym.pseudonyms import rotation_mapping
from signalhub.pseudonym.vault import ensure_vault_key, vault_key_file

__all__ = ["keys_group"]


def _settings() -> Settings:
    ctx = click.get_current_context()
    found = ctx.find_root().obj
    return found if isinstance(found, Settings) else load_settings()


def _fail(exc: SignalhubError) -> None:
    click.echo(f"Error: {exc}", err=True)
    raise SystemExit(1)


def _file_provider(settings: Settings) -> FileKeyProvider:
    provider = key_provider(settings)
    if not isinstance(provider, FileKeyProvider):
        raise KeyProviderError(
            "the master key comes from SIGNALHUB_MASTER_KEY or SIGNALHUB_KEY_PROVIDER, not a "
            "key file — rotate it where it is kept, or unset it to manage the key file"
        )
    return provider


@click.group("keys")
def keys_group() -> None:
    """Manage the pseudonym master keys (a versioned key ring) and the vault key."""


@keys_group.command("init")
def init_command() -> None:
    """Create the key file with key version 1, and the vault key, both owner-only.

    Refuses to replace an existing key file: a lost key makes every pseudonym unlinkable.
    """
    import secrets

    try:
        settings = _settings()
        provider = _file_provider(settings)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        ring = KeyRing(1, {1: secrets.token_bytes(MIN_KEY_BYTES)}, {1: stamp})
        provider.save(ring, new=True)
        created_vault = ensure_vault_key(vault_key_file(settings))
    except SignalhubError as exc:
        _fail(exc)
        return
    click.echo(f"created {provider.path} (key version 1, mode 0600)")
    vault = vault_key_file(settings)
    click.echo(f"{'created' if created_vault else 'kept existing'} vault key {vault} (mode 0600)")


@keys_group.command("rotate")
def rotate_command() -> None:
    """Add a new key version and make it current: new pseudonyms use it, old versions stay."""
    try:
        provider = _file_provider(_settings())
        ring = provider.load().rotated()
        provider.save(ring)
    except SignalhubError as exc:
        _fail(exc)
        return
    click.echo(
        f"key version {ring.current} is now current in {provider.path}; restart the enforcer "
        "workers, and offer subscribers `signalhub keys export-mapping` to keep their links"
    )


@keys_group.command("list")
def list_command() -> None:
    """The key versions (never the keys), which one is current, and where they come from."""
    try:
        settings = _settings()
        provider = key_provider(settings)
        ring = provider.load()
    except SignalhubError as exc:
        _fail(exc)
        return
    where = provider.path if isinstance(provider, FileKeyProvider) else type(provider).__name__
    click.echo(f"source: {where}")
    for version in ring.versions:
        marker = "current" if version == ring.current else ""
        created = ring.created.get(version, "-")
        click.echo(f"  k{version:<4} {created:<26} {marker}".rstrip())


@keys_group.command("export-mapping")
@click.option("--domain", required=True, help="The pseudonym domain (usually the subscriber).")
@click.option("--from", "old", type=int, required=True, help="The old key version.")
@click.option("--to", "new", type=int, default=None, help="The new key version (default: current).")
@click.option(
    "--input",
    "input_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Identifiers, one per line (# comments and blank lines skipped).",
)
@click.option("--kind", default="bsn", show_default=True, help="The pii kind of the identifiers.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV file to write (default: standard output).",
)
def export_mapping_command(
    domain: str, old: int, new: int | None, input_file: Path, kind: str, output: Path | None
) -> None:
    """CSV old_pseudonym,new_pseudonym for one domain: lets a subscriber keep its links.

    The output holds only pseudonyms of that domain, never an identifier or a key.
    """
    try:
        ring = load_key_ring(_settings())
        values = [
            line.strip()
            for line in input_file.read_text("utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        pairs = rotation_mapping(
            ring, domain, kind, values, old, ring.current if new is None else new
        )
    except ValueError as exc:
        _fail(KeyProviderError(str(exc)))
        return
    except SignalhubError as exc:
        _fail(exc)
        return
    if output is None:
        _write(pairs, sys.stdout)
    else:
        with output.open("w", encoding="utf-8", newline="") as handle:
            _write(pairs, handle)
        click.echo(f"wrote {len(pairs)} pairs to {output}", err=True)


def _write(pairs: list[tuple[str, str]], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["old_pseudonym", "new_pseudonym"])
    writer.writerows(pairs)
