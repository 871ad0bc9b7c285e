"""``signalhub keys ...`` and ``signalhub reidentify ...``: the keys and the break-glass act.

``keys`` creates, rotates and lists the pseudonym key ring and exports a rotation map. Only the
key file is written here (``SIGNALHUB_KEY_FILE`` or ``<state_dir>/pseudonym.key``, mode 0600);
keys from the environment or a key-provider plug-in are listed but managed where they live. No
command prints a key.

``reidentify`` requests, approves and reveals the identity behind one pseudonym; the web console
calls the same workflow (:mod:`signalhub.pseudonym.reidentify`). Every step is audited, refusals
included, and the identity is printed only by ``reveal``, once, to the requester.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import click

from signalhub.cli import current_settings, fail
from signalhub.config import Settings
from signalhub.errors import KeyProviderError, SignalhubError
from signalhub.pseudonym.keys import (
    FileKeyProvider,
    KeyRing,
    key_provider,
    load_key_ring,
    rotation_mapping,
)
from signalhub.pseudonym.pseudonyms import MIN_KEY_BYTES
from signalhub.pseudonym.reidentify import Reidentification, ReidRequest, open_reidentification
from signalhub.pseudonym.vault import ensure_vault_key, vault_key_file

__all__ = ["keys_group", "reidentify_group"]


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
        settings = current_settings()
        provider = _file_provider(settings)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        ring = KeyRing(1, {1: secrets.token_bytes(MIN_KEY_BYTES)}, {1: stamp})
        provider.save(ring, new=True)
        created_vault = ensure_vault_key(vault_key_file(settings))
    except SignalhubError as exc:
        fail(exc)
    click.echo(f"created {provider.path} (key version 1, mode 0600)")
    vault = vault_key_file(settings)
    click.echo(f"{'created' if created_vault else 'kept existing'} vault key {vault} (mode 0600)")


@keys_group.command("rotate")
def rotate_command() -> None:
    """Add a new key version and make it current: new pseudonyms use it, old versions stay."""
    try:
        provider = _file_provider(current_settings())
        ring = provider.load().rotated()
        provider.save(ring)
    except SignalhubError as exc:
        fail(exc)
    click.echo(
        f"key version {ring.current} is now current in {provider.path}; restart the enforcer "
        "workers, and offer subscribers `signalhub keys export-mapping` to keep their links"
    )


@keys_group.command("list")
def list_keys_command() -> None:
    """The key versions (never the keys), which one is current, and where they come from."""
    try:
        settings = current_settings()
        provider = key_provider(settings)
        ring = provider.load()
    except SignalhubError as exc:
        fail(exc)
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
        ring = load_key_ring(current_settings())
        values = [
            line.strip()
            for line in input_file.read_text("utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        pairs = rotation_mapping(
            ring, domain, kind, values, old, ring.current if new is None else new
        )
    except ValueError as exc:
        fail(KeyProviderError(str(exc)))
    except SignalhubError as exc:
        fail(exc)
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


# -- reidentify ----------------------------------------------------------------------------------


def _workflow() -> Reidentification:
    return open_reidentification(current_settings())


def _show(request: ReidRequest) -> str:
    approvals = ",".join(request.approvals) or "-"
    return (
        f"{request.request_id}  {request.state:<8}  {request.subscriber}/{request.requested_by}  "
        f"{request.pseudonym}  case {request.case_ref}  approvals {approvals}  "
        f"expires {request.expires_at.isoformat(timespec='seconds')}"
    )


@click.group("reidentify")
def reidentify_group() -> None:
    """Request, approve and reveal the identity behind one pseudonym (two officers, audited)."""


@reidentify_group.command("request")
@click.option("--subscriber", required=True, help="The subscriber that received the pseudonym.")
@click.option("--requested-by", required=True, help="The subscriber's employee asking.")
@click.option("--pseudonym", required=True)
@click.option("--reason", required=True, help="Why the identity is needed.")
@click.option("--case-ref", required=True, help="The subscriber's case reference.")
def request_command(
    subscriber: str, requested_by: str, pseudonym: str, reason: str, case_ref: str
) -> None:
    """File a request; it waits for two officers' approvals."""
    try:
        request = _workflow().request(subscriber, requested_by, pseudonym, reason, case_ref)
    except SignalhubError as exc:
        fail(exc)
    click.echo(_show(request))


@reidentify_group.command("approve")
@click.argument("request_id")
@click.option(
    "--officer", required=True, help="The approving officer (SIGNALHUB_REIDENTIFY_OFFICERS)."
)
def approve_command(request_id: str, officer: str) -> None:
    """Approve a request (a second, different officer completes the approval)."""
    try:
        request = _workflow().approve(request_id, officer)
    except SignalhubError as exc:
        fail(exc)
    click.echo(_show(request))


@reidentify_group.command("refuse")
@click.argument("request_id")
@click.option("--officer", required=True)
@click.option("--reason", required=True)
def refuse_command(request_id: str, officer: str, reason: str) -> None:
    """Refuse a request: it is closed for good."""
    try:
        request = _workflow().refuse(request_id, officer, reason)
    except SignalhubError as exc:
        fail(exc)
    click.echo(_show(request))


@reidentify_group.command("reveal")
@click.argument("request_id")
@click.option("--subscriber", required=True)
@click.option("--requested-by", required=True)
def reveal_command(request_id: str, subscriber: str, requested_by: str) -> None:
    """Print the identity, once, to the requester of an approved request."""
    try:
        identity = _workflow().reveal(request_id, subscriber, requested_by)
    except SignalhubError as exc:
        fail(exc)
    click.echo(identity)


@reidentify_group.command("list")
@click.option("--state", default=None, help="pending | approved | refused | expired | revealed")
def list_requests_command(state: str | None) -> None:
    """The requests (never an identity)."""
    try:
        requests = _workflow().list_requests(state)
    except SignalhubError as exc:
        fail(exc)
    for request in requests:
        click.echo(_show(request))


@reidentify_group.command("audit")
@click.argument("request_id", required=False)
def audit_command(request_id: str | None) -> None:
    """The audit trail (all requests, or one), and whether its hash chain is intact."""
    try:
        workflow = _workflow()
        events = workflow.audit_trail(request_id)
        broken = workflow.verify_audit()
    except SignalhubError as exc:
        fail(exc)
    for event in events:
        click.echo(
            f"{event.seq:>5} {event.at} {event.event:<16} {event.request_id or '-'} "
            f"{event.actor} {event.detail}"
        )
    if broken:
        click.echo(f"Error: audit chain broken at rows {broken}", err=True)
        raise SystemExit(1)
