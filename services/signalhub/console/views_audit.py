"""Audit pages: what did whom receive about a subject, or what did a subscriber receive, and why.

The same queries as ``signalhub audit subject`` / ``audit query``
(:mod:`signalhub.audit.queries`). The BSN searched for is pseudonymised into the audit
domain at once (:func:`~signalhub.audit.queries.subject_refs_for`); it is posted (never in
a URL), never stored, logged or shown back. Before each search the store takes in what is new on
the ``audit`` topic (the ingester is idempotent, so this is safe beside a running one).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from signalhub.audit.backends import open_store
from signalhub.audit.ingest import AuditIngestor, audit_registry
from signalhub.audit.queries import (
    OUTCOMES,
    AuditQuery,
    find,
    is_bsn,
    subject_disclosures,
    subject_refs_for,
)
from signalhub.audit.store import StoredRecord
from signalhub.config import Settings
from signalhub.console.auth import Session
from signalhub.console.web import ConsoleContext, first, form_of, guarded
from signalhub.errors import SignalhubError
from signalhub.subscriptions import load_subscriptions, subscribers

__all__ = ["catch_up", "routes"]

#: Rows a page shows at most (the newest); the CLI exports everything.
PAGE_LIMIT = 500


def catch_up(settings: Settings, bootstrap: str) -> None:
    """Take what is new on the ``audit`` topic into the store (idempotent)."""
    store = open_store(settings)
    try:
        AuditIngestor(
            store,
            audit_registry(settings),
            bootstrap,
            group=settings.audit_group,
            idle_ms=300,
        ).run()
    finally:
        store.close()


def _search(ctx: ConsoleContext, subject: str, filters: AuditQuery) -> list[StoredRecord]:
    catch_up(ctx.settings, ctx.bootstrap)
    store = open_store(ctx.settings)
    try:
        if subject:
            refs = subject_refs_for(ctx.settings, subject)
            rows = subject_disclosures(store, refs, include_refusals=filters.outcome != "allow")
            if filters.subscriber:
                rows = [r for r in rows if r.record.get("subscriber") == filters.subscriber]
            if filters.outcome:
                rows = [r for r in rows if r.record.get("outcome") == filters.outcome]
            return rows
        return find(store, filters)
    finally:
        store.close()


async def _audit(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    form: dict[str, list[str]] = {}
    if request.method == "POST":
        form = await form_of(request)
    subject = first(form, "subject").strip()
    subscriber = first(form, "subscriber") or None
    outcome = first(form, "outcome") or None
    error = ""
    rows: list[StoredRecord] = []
    searched = request.method == "POST"
    if subject and not is_bsn(subject):
        error = "The subject must be a BSN (nine digits)."
    elif outcome is not None and outcome not in OUTCOMES:
        error = f"Unknown outcome {outcome!r}."
    elif searched:
        try:
            rows = await run_in_threadpool(
                _search, ctx, subject, AuditQuery(subscriber=subscriber, outcome=outcome)
            )
        except SignalhubError as exc:
            error = str(exc)
    shown: list[dict[str, Any]] = [
        {**row.record, "seq": row.seq} for row in reversed(rows[-PAGE_LIMIT:])
    ]
    names = subscribers(load_subscriptions(ctx.settings.subscriptions_file))
    return ctx.render(
        request,
        "audit.html",
        session,
        rows=shown,
        total=len(rows),
        searched=searched,
        by_subject=bool(subject),
        subscriber=subscriber or "",
        outcome=outcome or "",
        subscribers=names,
        outcomes=OUTCOMES,
        error=error,
        console_events=ctx.audit_log.entries()[-50:][::-1],
    )


def routes(ctx: ConsoleContext) -> list[BaseRoute]:
    endpoint = guarded(ctx, "read_audit", _audit)
    return [Route("/console/audit", endpoint, methods=["GET", "POST"])]
