"""Operator pages: the dashboard (throughput, lag, last delivery, policy, worker) and the DLQ.

Numbers come from one fresh scrape of the enforcer's exporter per page view, the same text
``/metrics`` serves, so what the page shows is what Prometheus would record.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from signalhub.apps.status import health
from signalhub.config import Settings
from signalhub.console.auth import Session
from signalhub.console.dlq import ReplayLog, read_dead_letters, replay
from signalhub.console.web import ConsoleContext, form_of, guarded
from signalhub.enforcer.metrics import MetricsSnapshot, parse_metrics, scrape_enforcer
from signalhub.subscriptions import load_subscriptions
from signalhub.wire import signal_type_of

__all__ = ["dashboard_summary", "reject_counts", "routes"]


def reject_counts(settings: Settings) -> Counter[tuple[str, str]]:
    """Connector rejects per (connector, reason code), from the reject files."""
    counts: Counter[tuple[str, str]] = Counter()
    for path in sorted((settings.state_dir / "rejects").glob("*.jsonl")):
        try:
            lines = path.read_text("utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                code = str(json.loads(line).get("code", "unknown"))
            except ValueError:
                code = "unreadable"
            counts[(path.stem, code)] += 1
    return counts


def _when(timestamp: float) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _mean(snapshot: MetricsSnapshot, name: str) -> float | None:
    count = snapshot.total(f"{name}_count")
    return snapshot.total(f"{name}_sum") / count if count else None


def dashboard_summary(ctx: ConsoleContext) -> dict[str, Any]:
    """Everything the dashboard shows, from one scrape (also served as JSON)."""
    text = scrape_enforcer(ctx.settings)
    snapshot = parse_metrics(text) if text else MetricsSnapshot({})
    report = health(
        ctx.settings, ctx.bootstrap, snapshot if text else None, ctx.sampler.topic_ends()
    )
    subscriptions = load_subscriptions(ctx.settings.subscriptions_file)
    last = {
        labels["subscriber"]: value
        for labels, value in snapshot.labelled("signalhub_last_delivery_timestamp_seconds")
    }
    delivered = snapshot.by_label("signalhub_deliveries_total", "subscriber")
    subscribers: dict[str, dict[str, Any]] = {}
    for sub in subscriptions:
        entry = subscribers.setdefault(
            sub.subscriber,
            {"deliveries": 0, "last_delivery": None, "lag": 0, "types": set(), "channel": set()},
        )
        entry["types"].update(sub.signal_types)
        entry["channel"].add(sub.channel)
    for name, entry in subscribers.items():
        entry["deliveries"] = int(delivered.get(name, 0))
        entry["last_delivery"] = _when(last.get(name, 0.0))
        entry["lag"] = sum(
            behind
            for where, behind in report.lag.items()
            if signal_type_of(where.split("[")[0]) in entry["types"]
        )
        entry["types"] = sorted(entry["types"])
        entry["channel"] = ", ".join(sorted(entry["channel"]))
    by_type: dict[str, dict[str, int]] = {}
    for labels, value in snapshot.labelled("signalhub_signals_total"):
        by_type.setdefault(labels["signal_type"], {})[labels["source_agency"]] = int(value)
    return {
        "enforcer_up": text is not None,
        "ready": report.ready,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
        "policy_version": report.policy_version,
        "totals": {
            "signals": int(snapshot.total("signalhub_signals_total")),
            "deliveries": int(snapshot.total("signalhub_deliveries_total")),
            "dead_letters": int(snapshot.total("signalhub_dead_letters_total")),
            "parked": int(snapshot.total("signalhub_parked_total")),
            "blocked": int(snapshot.total("signalhub_blocked_deliveries_total")),
        },
        "decisions": {
            outcome: int(value)
            for outcome, value in snapshot.by_label("signalhub_decisions_total", "outcome").items()
        },
        "dead_letter_reasons": {
            reason: int(value)
            for reason, value in snapshot.by_label("signalhub_dead_letters_total", "reason").items()
        },
        "rejects": {f"{c}/{r}": n for (c, r), n in sorted(reject_counts(ctx.settings).items())},
        "signals_by_type": by_type,
        "subscribers": subscribers,
        "lag": report.lag,
        "worker": {
            "up": text is not None,
            "started_at": _when(snapshot.total("signalhub_enforcer_started_timestamp_seconds")),
            "last_processed_at": _when(
                snapshot.total("signalhub_enforcer_last_processed_timestamp_seconds")
            ),
            "memo_hit_ratio": snapshot.total("signalhub_policy_memo_hit_ratio"),
            "decision_ms": _ms(_mean(snapshot, "signalhub_decision_seconds")),
            "end_to_end_ms": _ms(_mean(snapshot, "signalhub_end_to_end_seconds")),
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def _dashboard(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    summary = await run_in_threadpool(dashboard_summary, ctx)
    return ctx.render(request, "dashboard.html", session, s=summary)


async def _summary_api(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    return JSONResponse(await run_in_threadpool(dashboard_summary, ctx))


async def _throughput_api(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    return JSONResponse({"points": ctx.sampler.throughput()})


def _replay_log(ctx: ConsoleContext) -> ReplayLog:
    return ReplayLog(ctx.dir / "dlq-replayed.json")


async def _dlq(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    letters = await run_in_threadpool(read_dead_letters, ctx.bootstrap, ctx.registry)
    return ctx.render(
        request,
        "dlq.html",
        session,
        letters=letters,
        replayed=_replay_log(ctx).replayed(),
        message=request.query_params.get("message", ""),
    )


async def _replay(request: Request, ctx: ConsoleContext, session: Session) -> Response:
    form = await form_of(request)
    wanted = set(form.get("ref", []))
    letters = await run_in_threadpool(read_dead_letters, ctx.bootstrap, ctx.registry)
    chosen = [letter for letter in letters if letter.ref in wanted]
    done, refused = await run_in_threadpool(
        replay, ctx.bootstrap, ctx.registry, chosen, _replay_log(ctx), session.user
    )
    for letter in done:
        ctx.audit_log.append(
            "dlq_replay",
            user=session.user,
            dlq=letter.ref,
            to=letter.source_topic,
            reason=letter.reason,
            sha256=letter.digest,
        )
    message = f"replayed {len(done)} record(s)" + "".join(
        f"; {letter.ref} refused: {why}" for letter, why in refused
    )
    return ctx.render(
        request,
        "dlq.html",
        session,
        letters=letters,
        replayed=_replay_log(ctx).replayed(),
        message=message,
    )


def routes(ctx: ConsoleContext) -> list[BaseRoute]:
    return [
        Route("/console/dashboard", guarded(ctx, "view_operations", _dashboard), methods=["GET"]),
        Route(
            "/console/api/summary", guarded(ctx, "view_operations", _summary_api), methods=["GET"]
        ),
        Route(
            "/console/api/throughput",
            guarded(ctx, "view_operations", _throughput_api),
            methods=["GET"],
        ),
        Route("/console/dlq", guarded(ctx, "view_operations", _dlq), methods=["GET"]),
        Route("/console/dlq/replay", guarded(ctx, "replay_dlq", _replay), methods=["POST"]),
    ]
