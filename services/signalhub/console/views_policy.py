"""Security-officer pages: edit, check, test, dry-run and publish the policy; history; matrix.

Each action calls the function ``signalhub policy ...`` calls (publish_policy, rollback_policy,
check_policies, run_rego_tests, diff_policies, policy_matrix), on the user's draft
(:mod:`signalhub.console.drafts`). Operators and auditors are refused here, pages and API alike.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from signalhub.apps.publishers import publishing_agencies
from signalhub.console.auth import Session
from signalhub.console.drafts import PolicyDraft, Problem, locate_problems
from signalhub.console.web import ConsoleContext, first, form_of, guarded
from signalhub.errors import SignalhubError
from signalhub.policy.bundle import PolicyBundle, bundle_from_dir
from signalhub.policy.diff import diff_policies, read_traffic_topics
from signalhub.policy.engine import EmbeddedPolicyEngine, PolicyEngine
from signalhub.policy.lifecycle import policy_in_force, publish_policy, rollback_policy
from signalhub.policy.matrix import policy_matrix
from signalhub.policy.store import PolicyStore, read_current_bundle
from signalhub.subscriptions import by_signal_type, load_subscriptions

__all__ = ["routes"]


def _in_force(ctx: ConsoleContext) -> PolicyBundle:
    raw = read_current_bundle(ctx.bootstrap)
    return (
        PolicyBundle.from_bytes(raw)
        if raw is not None
        else bundle_from_dir(ctx.settings.policies_dir)
    )


def _draft(ctx: ConsoleContext, session: Session) -> PolicyDraft:
    draft = PolicyDraft.for_user(ctx.dir, session.user)
    if not draft.exists:
        draft.seed(_in_force(ctx))
    return draft


def _close(engine: PolicyEngine) -> None:
    close = getattr(engine, "close", None)
    if callable(close):
        close()


def _subscriptions(ctx: ConsoleContext) -> Any:
    return by_signal_type(
        load_subscriptions(ctx.settings.subscriptions_file, ctx.registry.signal_types())
    )


def _dry_run(ctx: ConsoleContext, draft: PolicyDraft) -> str:
    """``signalhub policy diff --candidate <draft>`` against the traffic on the signal topics."""
    before = policy_in_force(ctx.settings, ctx.bootstrap)
    after = EmbeddedPolicyEngine.from_dir(draft.root)
    try:
        signals = read_traffic_topics(ctx.bootstrap, ctx.registry)
        report = diff_policies(
            ctx.registry, _subscriptions(ctx), before, after, signals, date.today()
        )
    finally:
        _close(before)
        after.close()
    return report.render()


def _run_action(
    ctx: ConsoleContext, session: Session, draft: PolicyDraft, action: str, message: str
) -> dict[str, Any]:
    """Run one editor action; returns what the page shows about it."""
    result: dict[str, Any] = {"action": action, "problems": [], "tests": [], "output": ""}
    if action == "reset":
        draft.seed(_in_force(ctx))
        result["output"] = "draft replaced by the version in force"
        return result
    problems = draft.check()
    result["problems"] = problems
    if action == "check":
        result["output"] = "the draft parses and compiles" if not problems else ""
    elif action == "test" and not problems:
        tests = draft.test()
        result["tests"] = tests
        failed = sum(1 for _, ok, _ in tests if not ok)
        result["output"] = f"{len(tests) - failed}/{len(tests)} Rego tests pass"
    elif action == "diff" and not problems:
        result["output"] = _dry_run(ctx, draft)
    elif action == "publish":
        try:
            event = publish_policy(
                ctx.settings,
                ctx.bootstrap,
                draft.root,
                message=message,
                author=session.user,
                today=date.today(),
            )
        except SignalhubError as exc:
            result["error"] = str(exc)
            lines = [line.strip() for line in str(exc).splitlines()[1:-1]]
            result["problems"] = problems or locate_problems([ln for ln in lines if ln])
            ctx.audit_log.append("policy_publish_refused", user=session.user)
        else:
            ctx.audit_log.append(
                "policy_publish", user=session.user, version=event.version, message=event.message
            )
            result["output"] = f"published {event.version}: {event.message}"
            result["published"] = event.version
    elif action == "save":
        result["output"] = "draft saved"
    return result


async def _editor(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    draft = await run_in_threadpool(_draft, ctx, session)
    return await _render_editor(request, ctx, session, draft, request.query_params.get("file"))


async def _render_editor(
    request: Request,
    ctx: ConsoleContext,
    session: Session,
    draft: PolicyDraft,
    name: str | None,
    result: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    files = draft.files()
    current = name if name in files else _default_file(files)
    text = draft.read(current) if current else ""
    in_force = await run_in_threadpool(_in_force, ctx)
    problems: list[Problem] = list((result or {}).get("problems", []))
    marks = {p.line for p in problems if p.file == current and p.line}
    return ctx.render(
        request,
        "policy.html",
        session,
        status_code=status_code,
        files=files,
        current=current,
        text=text,
        lines=text.split("\n"),
        marks=marks,
        result=result,
        problems=problems,
        in_force=in_force,
    )


#: The editor opens the sharing policy first: it is the one security officers edit most.
_MAIN_POLICY = "signalhub/sharing/sharing.rego"


def _default_file(files: list[str]) -> str | None:
    if _MAIN_POLICY in files:
        return _MAIN_POLICY
    rules = [f for f in files if f.endswith(".rego") and not f.endswith("_test.rego")]
    candidates = rules or files
    return candidates[0] if candidates else None


async def _submit(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    form = await form_of(request)
    draft = await run_in_threadpool(_draft, ctx, session)
    name = first(form, "file")
    action = first(form, "action", "save")
    try:
        if "text" in form and action != "reset":
            draft.write(name, first(form, "text"))
        result = await run_in_threadpool(
            _run_action, ctx, session, draft, action, first(form, "message")
        )
    except SignalhubError as exc:
        result = {"action": action, "problems": [], "tests": [], "error": str(exc)}
    failed = bool(result.get("error") or result.get("problems"))
    return await _render_editor(
        request, ctx, session, draft, name, result, status_code=422 if failed else 200
    )


async def _publish_api(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    """JSON: publish the caller's draft with ``{"message": ...}`` (CSRF header required)."""
    try:
        body = await request.json()
    except ValueError:
        body = {}
    draft = await run_in_threadpool(_draft, ctx, session)
    result = await run_in_threadpool(
        _run_action, ctx, session, draft, "publish", str(body.get("message", ""))
    )
    if "published" in result:
        return JSONResponse({"published": result["published"]})
    problems = [str(p) for p in result.get("problems", [])]
    return JSONResponse({"error": result.get("error"), "problems": problems}, status_code=422)


async def _history(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    events = PolicyStore.in_state_dir(ctx.settings.state_dir).history()
    in_force = await run_in_threadpool(_in_force, ctx)
    return ctx.render(
        request,
        "history.html",
        session,
        events=list(reversed(events)),
        in_force=in_force,
        message=request.query_params.get("message", ""),
    )


async def _rollback(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    form = await form_of(request)
    version = first(form, "version")
    try:
        event = await run_in_threadpool(
            lambda: rollback_policy(
                ctx.settings,
                ctx.bootstrap,
                version,
                author=session.user,
                message=first(form, "message"),
            )
        )
    except SignalhubError as exc:
        message = f"rollback refused: {exc}"
    else:
        ctx.audit_log.append("policy_rollback", user=session.user, version=event.version)
        message = f"rolled back: {event.version} is in force"
    return RedirectResponse("/console/policy/history?" + _query(message=message), status_code=303)


def _query(**values: str) -> str:
    from urllib.parse import urlencode

    return urlencode(values)


def _matrix_rows(ctx: ConsoleContext) -> tuple[str, list[Any]]:
    engine = policy_in_force(ctx.settings, ctx.bootstrap)
    try:
        sources = publishing_agencies(ctx.settings.connectors_dir)
        rows = policy_matrix(
            ctx.registry, _subscriptions(ctx), engine, date.today(), sources=sources
        )
        return engine.version, rows
    finally:
        _close(engine)


async def _matrix(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    version, rows = await run_in_threadpool(_matrix_rows, ctx)
    return ctx.render(request, "matrix.html", session, version=version, rows=rows)


def routes(ctx: ConsoleContext) -> list[BaseRoute]:
    return [
        Route("/console/policy", guarded(ctx, "view_policy", _editor), methods=["GET"]),
        Route("/console/policy", guarded(ctx, "change_policy", _submit), methods=["POST"]),
        Route(
            "/console/api/policy/publish",
            guarded(ctx, "change_policy", _publish_api),
            methods=["POST"],
        ),
        Route("/console/policy/history", guarded(ctx, "view_policy", _history), methods=["GET"]),
        Route(
            "/console/policy/rollback", guarded(ctx, "change_policy", _rollback), methods=["POST"]
        ),
        Route("/console/policy/matrix", guarded(ctx, "view_policy", _matrix), methods=["GET"]),
    ]
