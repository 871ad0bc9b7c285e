"""The console's routes, mounted by ``signalhub up`` beside ingest and the pull API.

:func:`console_routes` returns the routes; :func:`console_app` wraps them in an app of their
own (tests, ``signalhub console serve``). Besides the pages under ``/console/`` they serve
``/metrics`` (the console's gauges merged with the enforcer's exporter), ``/healthz`` (the
process and the broker) and ``/readyz`` (broker, enforcer consuming, policy loaded).
"""

from __future__ import annotations

import secrets
import time
from contextlib import ExitStack
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from signalhub.apps.hub_state import supervised_hub_state
from signalhub.apps.status import HealthReport, broker_check, hub_health
from signalhub.bundling.service import render_wijkbeeld
from signalhub.config import Settings
from signalhub.console.audit_log import ConsoleAuditLog
from signalhub.console.auth import LoginThrottle, Session, SessionSigner, UserStore, console_dir
from signalhub.console.sampler import Sampler, TopicEnds
from signalhub.console.settings import ConsoleSettings
from signalhub.console.views_audit import routes as audit_routes
from signalhub.console.views_ops import reject_counts
from signalhub.console.views_ops import routes as ops_routes
from signalhub.console.views_policy import routes as policy_routes
from signalhub.console.web import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    ConsoleContext,
    first,
    guarded,
    read_form,
)
from signalhub.enforcer.metrics import parse_metrics, scrape_enforcer
from signalhub.schema.registry import SchemaRegistry

__all__ = ["console_app", "console_context", "console_routes"]

_HERE = Path(__file__).parent


def console_context(
    settings: Settings, bootstrap: str, stack: ExitStack, *, sample: bool = True
) -> ConsoleContext:
    """Everything the console's endpoints share; its sampler thread is stopped by ``stack``."""
    console_settings = ConsoleSettings()
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    topics = [registry.signal(t).topic for t in registry.signal_types()]
    sampler = Sampler(
        scrape=lambda: scrape_enforcer(settings),
        ends_factory=lambda: TopicEnds(bootstrap, topics),
        interval_s=console_settings.sample_interval_s,
        history_s=console_settings.history_minutes * 60.0,
    )
    if sample:
        sampler.start()
        stack.callback(sampler.stop)
    directory = console_dir(settings.state_dir)
    return ConsoleContext(
        settings=settings,
        console_settings=console_settings,
        bootstrap=bootstrap,
        registry=registry,
        users=UserStore.in_state_dir(settings.state_dir),
        signer=SessionSigner.in_state_dir(settings.state_dir, ttl_s=console_settings.session_ttl_s),
        throttle=LoginThrottle(
            console_settings.login_max_failures, console_settings.login_window_s
        ),
        audit_log=ConsoleAuditLog(directory / "audit.jsonl"),
        sampler=sampler,
        templates=Jinja2Templates(directory=str(_HERE / "templates")),
    )


def console_routes(
    settings: Settings, bootstrap: str, stack: ExitStack, *, sample: bool = True
) -> list[BaseRoute]:
    """The console's routes (pages, API, static files, /metrics, /healthz, /readyz)."""
    ctx = console_context(settings, bootstrap, stack, sample=sample)
    return routes_for(ctx)


def routes_for(ctx: ConsoleContext) -> list[BaseRoute]:
    async def login_page(request: Request) -> Response:
        return _login_form(ctx, request)

    async def login(request: Request) -> Response:
        return await _login(ctx, request)

    async def metrics(request: Request) -> Response:
        return await run_in_threadpool(_metrics, ctx)

    async def healthz(request: Request) -> Response:
        check = await run_in_threadpool(broker_check, ctx.bootstrap)
        body = {"status": "ok" if check.ok else "failing", "broker": check.detail}
        return JSONResponse(body, status_code=200 if check.ok else 503)

    async def readyz(request: Request) -> Response:
        report = await run_in_threadpool(_health, ctx)
        return JSONResponse(report.to_json(), status_code=200 if report.ready else 503)

    async def root(request: Request) -> Response:
        return RedirectResponse("/console/", status_code=303)

    async def logout(request: Request, ctx: ConsoleContext, session: Session) -> Response:
        ctx.audit_log.append("logout", user=session.user)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def wijkbeeld(request: Request, ctx: ConsoleContext, session: Session) -> Response:
        # Aggregates with small-cell suppression: no personal data, so every role may read it.
        page = await run_in_threadpool(render_wijkbeeld, ctx.settings, "html")
        return HTMLResponse(page)

    async def home(request: Request, ctx: ConsoleContext, session: Session) -> Response:
        target = "/console/audit" if session.role == "auditor" else "/console/dashboard"
        return RedirectResponse(target, status_code=303)

    return [
        Route("/", root, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/console/login", login_page, methods=["GET"]),
        Route("/console/login", login, methods=["POST"]),
        Route("/console/logout", guarded(ctx, None, logout), methods=["POST"]),
        Route("/console/", guarded(ctx, None, home), methods=["GET"]),
        Route("/console/wijkbeeld", guarded(ctx, None, wijkbeeld), methods=["GET"]),
        *ops_routes(ctx),
        *policy_routes(ctx),
        *audit_routes(ctx),
        Mount("/console/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]


def console_app(
    settings: Settings, bootstrap: str, stack: ExitStack, *, sample: bool = True
) -> Starlette:
    """The console alone, as its own app."""
    return Starlette(routes=console_routes(settings, bootstrap, stack, sample=sample))


def _login_form(
    ctx: ConsoleContext, request: Request, error: str = "", status_code: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = ctx.render(
        request, "login.html", None, status_code=status_code, login_csrf=token, error=error
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/console/login"
    )
    return response


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _login(ctx: ConsoleContext, request: Request) -> Response:
    form = await read_form(request)
    name = first(form, "username").strip()
    password = first(form, "password")
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_token or not secrets.compare_digest(cookie_token, first(form, "csrf_token")):
        return _login_form(ctx, request, "The login form expired; try again.", 403)
    address = _client(request)
    if ctx.throttle.blocked(name, address):
        ctx.audit_log.append("login_refused", user=name, address=address, why="rate limited")
        return _login_form(
            ctx, request, "Too many failed logins; wait a while before trying again.", 429
        )
    user = await run_in_threadpool(ctx.users.authenticate, name, password)
    if user is None:
        failures = ctx.throttle.failed(name, address)
        ctx.audit_log.append("login_failed", user=name, address=address, failures=failures)
        return _login_form(ctx, request, "Unknown user or wrong password.", 401)
    ctx.throttle.succeeded(name, address)
    cookie, session = ctx.signer.issue(user)
    ctx.audit_log.append("login", user=user.name, role=user.role, address=address)
    response = RedirectResponse("/console/", status_code=303)
    max_age = max(1, session.expires - int(time.time()))
    response.set_cookie(COOKIE, cookie, max_age=max_age, httponly=True, samesite="strict", path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


def _own_metrics(ctx: ConsoleContext, report_lag: dict[str, int], enforcer_up: bool) -> bytes:
    registry = CollectorRegistry()
    lag = Gauge(
        "signalhub_consumer_lag",
        "Records a reader saw on the signal topic that the enforcer has not processed yet.",
        ["topic", "partition"],
        registry=registry,
    )
    for where, behind in report_lag.items():
        topic, _, partition = where.rstrip("]").partition("[")
        lag.labels(topic, partition).set(behind)
    seen = Gauge(
        "signalhub_topic_records_seen",
        "Next offset after the last record a reader saw, per signal topic partition.",
        ["topic", "partition"],
        registry=registry,
    )
    for (name, number), end in ctx.sampler.topic_ends().items():
        seen.labels(name, str(number)).set(end)
    Gauge(
        "signalhub_enforcer_up",
        "1 when the enforcer's metrics exporter answered the last scrape.",
        registry=registry,
    ).set(1 if enforcer_up else 0)
    rejects = Gauge(
        "signalhub_connector_rejects",
        "Records connectors refused (reject files under the state directory), per reason.",
        ["connector", "reason"],
        registry=registry,
    )
    for (connector, reason), count in reject_counts(ctx.settings).items():
        rejects.labels(connector, reason).set(count)
    _role_metrics(ctx, registry)
    return generate_latest(registry)


def _role_metrics(ctx: ConsoleContext, registry: CollectorRegistry) -> None:
    """Per role: up and restarts, from the supervisor's hub state (absent without ``up``)."""
    state = supervised_hub_state(ctx.settings.state_dir)
    if state is None:
        return
    up = Gauge("signalhub_role_up", "1 while the role's process runs.", ["role"], registry=registry)
    restarts = Gauge(
        "signalhub_role_restarts",
        "Times the supervisor restarted the role since signalhub up started.",
        ["role"],
        registry=registry,
    )
    for role in state.roles:
        up.labels(role.name).set(1 if role.up else 0)
        restarts.labels(role.name).set(role.restarts)
    Gauge(
        "signalhub_ingest_accepting",
        "1 while the hub takes signals (0: its broker is down or being recovered).",
        registry=registry,
    ).set(1 if state.accepting else 0)
    Gauge(
        "signalhub_broker_incidents",
        "Times the broker came back without the hub's data since signalhub up started.",
        registry=registry,
    ).set(len(state.incidents))


def _health(ctx: ConsoleContext) -> HealthReport:
    text = scrape_enforcer(ctx.settings)
    snapshot = parse_metrics(text) if text else None
    return hub_health(ctx.settings, ctx.bootstrap, snapshot, ctx.sampler.topic_ends())


def _metrics(ctx: ConsoleContext) -> Response:
    text = scrape_enforcer(ctx.settings)
    snapshot = parse_metrics(text) if text else None
    report = hub_health(ctx.settings, ctx.bootstrap, snapshot, ctx.sampler.topic_ends())
    body = _own_metrics(ctx, report.lag, text is not None) + (text or "").encode("utf-8")
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
