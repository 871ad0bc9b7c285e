"""Is the hub healthy? One summary for ``/readyz``, the dashboard and ``signalhub status``.

Three checks, each meaning something a person would act on:

* **broker** — a TCP connection to every bootstrap server opens within a second;
* **enforcer** — its metrics exporter answers and it is consuming: no lag on any signal
  partition, or it processed a record within the last ``STALL_S`` seconds;
* **policy** — the version in force loaded and can decide (not failing closed).

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

from signalhub.config import Settings
from signalhub.enforcer.metrics import MetricsSnapshot, parse_metrics, scrape_enforcer

__all__ = ["STALL_S", "Check", "HealthReport", "broker_check", "health", "lag", "local_health"]

#: An enforcer with lag that processed nothing for this long is not consuming.
STALL_S = 30.0


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


def local_health(settings: Settings) -> HealthReport:
    """The checks without the console: what ``status`` can reach from here (no lag reader)."""
    text = scrape_enforcer(settings)
    return health(settings, settings.bootstrap_servers, parse_metrics(text) if text else None, None)
