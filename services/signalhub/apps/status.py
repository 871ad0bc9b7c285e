"""Is the hub healthy? One summary for ``/readyz``, the dashboard and ``signalhub status``.

The checks, each meaning something a person would act on:

* **broker** — a TCP connection to every bootstrap server opens within a second;
* **enforcer** — its metrics exporter answers and it is consuming: no lag on any signal
  partition, or it processed a record within the last ``STALL_S`` seconds;
* **policy** — the version in force loaded and can decide (not failing closed);
* **roles** and **ingest** — under ``signalhub up``: every role running, the hub taking signals
  (its broker up and holding the hub's data); a broker incident is shown with its window;
* **audit store** and **audit ingest** — the store takes writes, ingest is not failing and is
  at most :data:`AUDIT_LAG_BOUND` records behind the ``audit`` topic;
* **opa** — with the OPA server backend, the server answers.

Lag is what a reader saw on the topic minus the enforcer's position (never end offsets).
``signalhub status`` asks the running hub's ``/readyz``; when nothing answers there it runs the
same checks itself with what it can reach.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from signalhub.apps.hub_state import STALE_S, HubState, supervised_hub_state
from signalhub.config import Settings
from signalhub.enforcer.metrics import MetricsSnapshot, parse_metrics, scrape_enforcer

__all__ = [
    "AUDIT_LAG_BOUND",
    "STALL_S",
    "Check",
    "HealthReport",
    "audit_checks",
    "broker_check",
    "health",
    "hub_health",
    "lag",
    "local_health",
    "opa_server_check",
    "role_checks",
]

#: An enforcer with lag that processed nothing for this long is not consuming.
STALL_S = 30.0
#: Audit records on the topic not yet in the store beyond which the hub is not ready.
AUDIT_LAG_BOUND = 2000


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class HealthReport:
    checks: list[Check]
    policy_version: str | None = None
    lag: dict[str, int] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "checks": [asdict(check) for check in self.checks],
            "policy_version": self.policy_version,
            "lag": self.lag,
            "workers": self.workers,
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> HealthReport:
        return cls(
            [Check(str(c["name"]), bool(c["ok"]), str(c["detail"])) for c in body["checks"]],
            body.get("policy_version"),
            {str(k): int(v) for k, v in (body.get("lag") or {}).items()},
            list(body.get("workers") or []),
        )

    def render(self) -> str:
        lines = [f"signalhub: {'READY' if self.ready else 'NOT READY'}"]
        for check in self.checks:
            lines.append(f"  {'ok ' if check.ok else 'FAIL'}  {check.name:<9} {check.detail}")
        lines.append(f"  policy in force: {self.policy_version or 'unknown'}")
        for where, behind in sorted(self.lag.items()):
            lines.append(f"  lag {where}: {behind}")
        return "\n".join(lines)


def broker_check(bootstrap_servers: str, *, timeout_s: float = 1.0) -> Check:
    """Open (and close) a TCP connection to each bootstrap server."""
    if not bootstrap_servers:
        return Check("broker", False, "no bootstrap servers known")
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                pass
        except (OSError, ValueError) as exc:
            return Check("broker", False, f"{server}: {exc}")
    return Check("broker", True, f"reachable at {bootstrap_servers}")


def lag(snapshot: MetricsSnapshot | None, ends: Mapping[tuple[str, int], int]) -> dict[str, int]:
    """``topic[partition]`` -> records seen on the topic that the enforcer has not processed."""
    positions: dict[tuple[str, int], float] = {}
    if snapshot is not None:
        for labels, value in snapshot.labelled("signalhub_enforcer_position"):
            positions[(labels["topic"], int(labels["partition"]))] = value
    return {
        f"{topic}[{partition}]": max(0, end - int(positions.get((topic, partition), 0)))
        for (topic, partition), end in sorted(ends.items())
    }


def health(
    settings: Settings,
    bootstrap_servers: str,
    snapshot: MetricsSnapshot | None,
    ends: Mapping[tuple[str, int], int] | None,
    *,
    now: float | None = None,
) -> HealthReport:
    """The three checks from a parsed enforcer scrape (None: it did not answer) and topic ends."""
    now = time.time() if now is None else now
    checks = [broker_check(bootstrap_servers)]
    behind = lag(snapshot, ends or {})
    version: str | None = None
    workers: list[dict[str, Any]] = []
    if snapshot is None:
        checks.append(Check("enforcer", False, "its metrics exporter does not answer"))
        checks.append(Check("policy", False, "unknown: the enforcer does not answer"))
    else:
        last = snapshot.total("signalhub_enforcer_last_processed_timestamp_seconds")
        started = snapshot.total("signalhub_enforcer_started_timestamp_seconds")
        pending = sum(behind.values())
        idle_s = now - (last or started)
        consuming = pending == 0 or idle_s < STALL_S
        detail = (
            f"consuming; {pending} records behind"
            if consuming
            else f"{pending} records behind and nothing processed for {idle_s:.0f} s"
        )
        checks.append(Check("enforcer", consuming, detail))
        workers.append(
            {
                "started_at": started,
                "last_processed_at": last or None,
                "processed": snapshot.total("signalhub_signals_total")
                + snapshot.total("signalhub_dead_letters_total"),
            }
        )
        loaded = snapshot.labelled("signalhub_policy_loaded")
        if loaded:
            labels, value = loaded[0]
            version = labels.get("policy_version")
            checks.append(
                Check(
                    "policy",
                    value == 1.0,
                    f"{version} loaded" if value == 1.0 else f"{version} failed to load",
                )
            )
        else:
            checks.append(Check("policy", False, "the enforcer reports no policy"))
    return HealthReport(checks, version, behind, workers)


def hub_health(
    settings: Settings,
    bootstrap_servers: str,
    snapshot: MetricsSnapshot | None,
    ends: Mapping[tuple[str, int], int] | None,
) -> HealthReport:
    """:func:`health` plus the hub-wide checks that ``/readyz`` and ``status`` answer with.

    The checks take a while (lag is counted by reading); a role that was killed and restarted
    meanwhile would be running at both ends of them. So the hub state is read before and after,
    and a role restarted in between makes the answer "not ready" as well.
    """
    before = supervised_hub_state(settings.state_dir)
    report = health(settings, bootstrap_servers, snapshot, ends)
    report.checks += audit_checks(settings, bootstrap_servers)
    if settings.policy_engine == "server":
        report.checks.append(opa_server_check(settings))
    report.checks += role_checks(settings, before=before)
    return report


def role_checks(
    settings: Settings, *, now: float | None = None, before: HubState | None = None
) -> list[Check]:
    """Every role alive and the hub taking signals, from the supervisor's hub state.

    ``before``: the hub state when the caller began checking; a role restarted since fails.
    Without a supervisor (docker-compose.yml runs each role as a service with its own restart
    policy) there is no hub state and no check.
    """
    state = supervised_hub_state(settings.state_dir)
    if state is None:
        return []
    now = time.time() if now is None else now
    if now - state.updated_at > STALE_S:
        age = now - state.updated_at
        return [Check("roles", False, f"the supervisor (signalhub up) is gone: silent {age:.0f} s")]
    down = [
        f"{role.name} {role.phase}" + (f" ({role.detail})" if role.detail else "")
        for role in state.roles
        if not role.up
    ]
    if before is not None:
        earlier = {role.name: role.restarts for role in before.roles}
        down += [
            f"{role.name} restarted while readiness was checked"
            for role in state.roles
            if role.up and role.restarts != earlier.get(role.name, role.restarts)
        ]
    restarts = sum(role.restarts for role in state.roles)
    detail = "; ".join(down) if down else f"all {len(state.roles)} running, {restarts} restarts"
    checks = [Check("roles", not down, detail)]
    checks.append(
        Check("ingest", state.accepting, "taking signals" if state.accepting else state.refusal)
    )
    if state.incidents:
        checks.append(Check("incidents", True, state.incidents[-1].describe()))
    return checks


def audit_checks(settings: Settings, bootstrap_servers: str) -> list[Check]:
    """The audit store takes writes, and audit ingest is within ``AUDIT_LAG_BOUND`` records."""
    from signalhub.audit.health import audit_ingest_lag, audit_ingest_status, audit_store_writable

    writable, why = audit_store_writable(settings)
    checks = [Check("audit store", writable, why)]
    status = audit_ingest_status(settings)
    if status is not None and status.get("state") != "ingesting":
        checks.append(Check("audit ingest", False, str(status.get("detail") or status["state"])))
        return checks
    hub = supervised_hub_state(settings.state_dir)
    role = hub.role("audit-ingest") if hub is not None else None
    if role is not None and (status is None or status.get("pid") != role.pid):
        checks.append(
            Check("audit ingest", False, "(re)started: it has not yet reached Kafka and the store")
        )
        return checks
    behind = audit_ingest_lag(settings, bootstrap_servers) if bootstrap_servers else None
    if behind is None:
        checks.append(
            Check("audit ingest", False, "its lag is unknown: the broker does not answer")
        )
    else:
        checks.append(
            Check(
                "audit ingest",
                behind <= AUDIT_LAG_BOUND,
                f"{behind} audit records not yet in the store (bound {AUDIT_LAG_BOUND})",
            )
        )
    return checks


def opa_server_check(settings: Settings) -> Check:
    """The OPA server answers its health endpoint (its decisions fail closed otherwise)."""
    import httpx

    url = f"{settings.opa_url.rstrip('/')}/health"
    try:
        response = httpx.get(url, timeout=min(settings.opa_timeout_s, 2.0))
    except httpx.HTTPError as exc:
        return Check("opa", False, f"{settings.opa_url} unreachable: {exc}")
    if response.status_code != 200:
        return Check("opa", False, f"{url} answered {response.status_code}")
    return Check("opa", True, f"{settings.opa_url} healthy")


def local_health(settings: Settings) -> HealthReport:
    """The checks without the console: what ``status`` can reach from here (no lag reader)."""
    text = scrape_enforcer(settings)
    snapshot = parse_metrics(text) if text else None
    return hub_health(settings, settings.bootstrap_servers, snapshot, None)
