"""The console's request plumbing: its shared context, sessions on requests, CSRF and rendering.

Every page and API endpoint is wrapped by :func:`guarded`, which is the one place that decides
who gets in: no valid session -> the login page (or 401 for the API); a role without the
permission -> 403; a state-changing request without the session's CSRF token -> 403.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from signalhub.config import Settings
from signalhub.console.audit_log import ConsoleAuditLog
from signalhub.console.auth import (
    ROLES,
    LoginThrottle,
    Session,
    SessionSigner,
    UserStore,
    allowed,
    console_dir,
)
from signalhub.console.sampler import Sampler
from signalhub.console.settings import ConsoleSettings
from signalhub.schema.registry import SchemaRegistry

__all__ = ["COOKIE", "ConsoleContext", "Form", "guarded", "read_form"]

logger = logging.getLogger(__name__)

COOKIE = "signalhub_session"
LOGIN_CSRF_COOKIE = "signalhub_login_csrf"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

Form = dict[str, list[str]]
Handler = Callable[[Request, "ConsoleContext", Session], Awaitable[Response]]


@dataclass
class ConsoleContext:
    """What every console endpoint shares: settings, the broker, users, sessions, logs."""

    settings: Settings
    console_settings: ConsoleSettings
    bootstrap: str
    registry: SchemaRegistry
    users: UserStore
    signer: SessionSigner
    throttle: LoginThrottle
    audit_log: ConsoleAuditLog
    sampler: Sampler
    templates: Jinja2Templates

    @property
    def dir(self) -> Path:
        return console_dir(self.settings.state_dir)

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status_code: int = 200,
        **values: Any,
    ) -> Response:
        context = {
            "session": session,
            "csrf": session.csrf if session else "",
            "can": (lambda permission: session is not None and allowed(session.role, permission)),
            "roles": ROLES,
            **values,
        }
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)

    def session(self, request: Request) -> Session | None:
        """The request's session, if its cookie is valid and its user still has that role."""
        session = self.signer.read(request.cookies.get(COOKIE))
        if session is None:
            return None
        user = self.users.get(session.user)
        if user is None or user.role != session.role:
            return None
        return session


async def read_form(request: Request) -> Form:
    """``application/x-www-form-urlencoded`` bodies (the console posts nothing else)."""
    body = (await request.body()).decode("utf-8", "replace")
    return urllib.parse.parse_qs(body, keep_blank_values=True)


def first(form: Form, name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/console/api/")


def forbidden(request: Request, ctx: ConsoleContext, session: Session, why: str) -> Response:
    if _is_api(request):
        return JSONResponse({"error": why}, status_code=403)
    return ctx.render(request, "forbidden.html", session, status_code=403, why=why)


def guarded(
    ctx: ConsoleContext, permission: str | None, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler`` with the session, permission and CSRF checks."""

    async def endpoint(request: Request) -> Response:
        session = ctx.session(request)
        if session is None:
            if _is_api(request):
                return JSONResponse({"error": "log in first"}, status_code=401)
            return RedirectResponse("/console/login", status_code=303)
        if permission is not None and not allowed(session.role, permission):
            return forbidden(
                request,
                ctx,
                session,
                f"the role {session.role} may not do this ({permission.replace('_', ' ')})",
            )
        if request.method not in _SAFE_METHODS:
            token = request.headers.get("x-csrf-token")
            if token is None:
                form = await read_form(request)
                request.state.form = form
                token = first(form, "csrf_token")
            if not token or not hmac.compare_digest(token, session.csrf):
                logger.warning("console: CSRF token missing or wrong for %s", request.url.path)
                return forbidden(request, ctx, session, "the form expired or was not ours (CSRF)")
        return await handler(request, ctx, session)

    return endpoint


async def form_of(request: Request) -> Form:
    """The form :func:`guarded` already read, or read it now (JSON API callers send none)."""
    form: Form | None = getattr(request.state, "form", None)
    if form is None:
        form = await read_form(request)
    return form
