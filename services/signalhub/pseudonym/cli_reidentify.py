"""``signalhub reidentify ...``: the break-glass re-identification workflow from the command line.

Mounted on the main CLI through ``cli._LAZY_COMMANDS``; the web console calls the same functions
of :mod:`signalhub.pseudonym.reidentify`. Every step is audited, refusals included. The identity is
printed only by ``reveal``, once, to the requester.
"""

from __future__ import annotations

import click

from signalhub.config import Settings, load_settings
from signalhub.errors import SignalhubError
from signalhub.pseudonym.reidentify import Reidentification, ReidRequest, open_reidentification

__all__ = ["reidentify_group"]


def _workflow() -> Reidentification:
    found = click.get_current_context().find_root().obj
    return open_reidentification(found if isinstance(found, Settings) else load_settings())


def _fail(exc: SignalhubError) -> None:
    click.echo(f"Error: {exc}", err=True)
    raise SystemExit(1)


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
        _fail(exc)
        return
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
        _fail(exc)
        return
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
        _fail(exc)
        return
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
        _fail(exc)
        return
    click.echo(identity)


@reidentify_group.command("list")
@click.option("--state", default=None, help="pending | approved | refused | expired | revealed")
def list_command(state: str | None) -> None:
    """The requests (never an identity)."""
    try:
        requests = _workflow().list_requests(state)
    except SignalhubError as exc:
        _fail(exc)
        return
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
        _fail(exc)
        return
    for event in events:
        click.echo(
            f"{event.seq:>5} {event.at} {event.event:<16} {event.request_id or '-'} "
            f"{event.actor} {event.detail}"
        )
    if broken:
        click.echo(f"Error: audit chain broken at rows {broken}", err=True)
        raise SystemExit(1)
