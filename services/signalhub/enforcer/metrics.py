"""Prometheus metrics of the enforcer, served from its own process, and how the console reads them.

The enforcer runs in a process of its own (:class:`signalhub.apps.stack.EnforcerProcess`), so its
counters live there. :class:`EnforcerMetrics` is the core's
:class:`~signalhub.enforcer.observer.EnforcementObserver` (given to the
:class:`~signalhub.enforcer.core.Enforcement` when it is built) and serves its metrics on a
loopback port, written to ``<state_dir>/enforcer-metrics.port`` so the console (another process)
can find and merge them.

What is counted where:

* from the core's :class:`~signalhub.enforcer.observer.RecordOutcome` of each record: signals per
  type and source agency, deliveries per subscriber, dead letters per reason, decisions per
  outcome (labelled with the policy version that made them), blocked deliveries, parked signals;
  the source agency and registration time come from the envelope the core decoded — never from
  the payload;
* timing: the core's time per signal (decode, decide, project, encode) and the end-to-end
  latency from the connector's ``registered_at`` to the moment the enforcer hands the delivery
  to its producer;
* the policy in force, read at scrape time: its version, whether it can decide or fails closed,
  and its memo's hits and misses;
* position: per ``topic[partition]`` the next offset to process. Consumer lag is computed in the
  console from what a reader actually sees on the topic minus this position
  (:mod:`signalhub.console.sampler`): the embedded broker's end offsets are unreliable.

Counters restart at zero with the process, as Prometheus counters do; a record re-processed
after a crash is counted again (the audit store de-duplicates, these do not).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import (
    Counter as PromCounter,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from signalhub.config import Settings
from signalhub.enforcer.observer import RecordOutcome
from signalhub.enforcer.outputs import SourceRecord

__all__ = [
    "ENFORCER_PORT_FILE",
    "EnforcerMetrics",
    "MetricsExporter",
    "MetricsSnapshot",
    "PolicyInForce",
    "enforcer_metrics_url",
    "parse_metrics",
    "scrape_enforcer",
]

logger = logging.getLogger(__name__)

#: Under the state directory: the loopback port of the enforcer's metrics exporter.
ENFORCER_PORT_FILE = "enforcer-metrics.port"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_E2E_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class MemoCounters(Protocol):
    """A policy memo's counters (they start again with each memo)."""

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...


class PolicyInForce(Protocol):
    """What the metrics read of the policy the enforcer decides with, at scrape time."""

    @property
    def version(self) -> str: ...

    @property
    def fails_closed(self) -> bool:
        """True while the version in force cannot decide, so every signal is parked."""

    @property
    def active(self) -> MemoCounters:
        """The memo deciding now; a switch puts a fresh one in force."""


class EnforcerMetrics:
    """The enforcer's metrics: the core's observer, and the policy in force read at scrape time."""

    def __init__(self, policy: PolicyInForce, *, clock: Callable[[], float] = time.time) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only add noise to every scrape
        self._clock = clock
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()
        self._exporter: MetricsExporter | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.signals = PromCounter(
            "signalhub_signals",
            "Signals the enforcer decoded, per signal type and source agency.",
            ["signal_type", "source_agency"],
            registry=r,
        )
        self.deliveries = PromCounter(
            "signalhub_deliveries",
            "Deliveries handed to the producer, per subscriber.",
            ["subscriber"],
            registry=r,
        )
        self.dead_letters = PromCounter(
            "signalhub_dead_letters",
            "Records sent to signals.dlq, per reason.",
            ["reason"],
            registry=r,
        )
        self.decisions = PromCounter(
            "signalhub_decisions",
            "Policy decisions (one per subscription of a signal), per outcome and policy version.",
            ["outcome", "policy_version"],
            registry=r,
        )
        self.blocked = PromCounter(
            "signalhub_blocked_deliveries",
            "Deliveries the leak guard stopped, per subscriber.",
            ["subscriber"],
            registry=r,
        )
        self.parked = PromCounter(
            "signalhub_parked",
            "Signals parked because the policy could not be evaluated.",
            registry=r,
        )
        self.enforcement_seconds = Histogram(
            "signalhub_decision_seconds",
            "Enforcer core time per signal: decode, one policy decision, projection, encoding.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "signalhub_end_to_end_seconds",
            "From the connector's registered_at to the enforcer handing the delivery over.",
            buckets=_E2E_BUCKETS,
            registry=r,
        )
        self.position = Gauge(
            "signalhub_enforcer_position",
            "Next offset the enforcer will process, per signal topic partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.last_processed = Gauge(
            "signalhub_enforcer_last_processed_timestamp_seconds",
            "When the enforcer last processed a record (Unix time; 0 = not yet).",
            registry=r,
        )
        self.last_delivery = Gauge(
            "signalhub_last_delivery_timestamp_seconds",
            "When the enforcer last produced a delivery, per subscriber (Unix time).",
            ["subscriber"],
            registry=r,
        )
        started = Gauge(
            "signalhub_enforcer_started_timestamp_seconds",
            "When this enforcer worker started (Unix time).",
            registry=r,
        )
        started.set(clock())
        r.register(_PolicyCollector(policy))

    def processed(self, record: SourceRecord, outcome: RecordOutcome, seconds: float) -> None:
        """Count what the core did with one record, and how long it took (the observer call)."""
        now = self._clock()
        child = self._child
        with self._lock:
            child(self.position, record.topic, str(record.partition)).set(record.offset + 1)
            self.last_processed.set(now)
            if outcome.signal_type is not None:
                child(self.signals, outcome.signal_type, outcome.source_agency).inc()
                self.enforcement_seconds.observe(seconds)
            if outcome.dead_letter is not None:
                child(self.dead_letters, outcome.dead_letter).inc()
            for name, count in (
                ("allow", outcome.allowed),
                ("deny", outcome.denied),
                ("error", outcome.errors),
            ):
                if count:
                    child(self.decisions, name, outcome.policy_version).inc(count)
            for subscriber in outcome.blocked:
                child(self.blocked, subscriber).inc()
            if outcome.parked:
                self.parked.inc()
            registered = outcome.registered_at
            for subscriber in outcome.delivered:
                child(self.deliveries, subscriber).inc()
                child(self.last_delivery, subscriber).set(now)
                if registered is not None:
                    self.end_to_end.observe(max(0.0, now - registered.timestamp()))

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: the label sets are few and looked up per signal."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, state_dir: Path, port: int = 0) -> MetricsExporter:
        """Serve these metrics on 127.0.0.1 (``port`` 0 = a free one); serving twice is one server.

        The port is written to ``<state_dir>/enforcer-metrics.port`` for the console to find.
        """
        if self._exporter is not None:
            return self._exporter
        server, thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        actual = int(server.server_port)
        port_file = state_dir / ENFORCER_PORT_FILE
        port_file.parent.mkdir(parents=True, exist_ok=True)
        port_file.write_text(f"{actual}\n", "utf-8")
        self._exporter = MetricsExporter(actual, port_file, self, server, thread)
        logger.info("enforcer metrics on http://127.0.0.1:%d/metrics", actual)
        return self._exporter


class _PolicyCollector(Collector):
    """The policy in force and its memo's hits and misses, read at scrape time.

    The memo is replaced at each policy switch (its counters start again), so the totals here
    add up the counters of every memo this collector has seen, to stay monotonic.
    """

    def __init__(self, policy: PolicyInForce) -> None:
        self._policy = policy
        self._retired_hits = 0
        self._retired_misses = 0
        self._current: MemoCounters | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        policy = self._policy
        memo = policy.active
        with self._lock:
            if memo is not self._current:
                if self._current is not None:
                    self._retired_hits += self._current.hits
                    self._retired_misses += self._current.misses
                self._current = memo
            hits = self._retired_hits + memo.hits
            misses = self._retired_misses + memo.misses
        version = policy.version
        loaded = not policy.fails_closed
        info = GaugeMetricFamily(
            "signalhub_policy_loaded",
            "1 when the policy version in force loaded and can decide, 0 when it fails closed.",
            labels=["policy_version"],
        )
        info.add_metric([version], 1.0 if loaded else 0.0)
        yield info
        yield CounterMetricFamily(
            "signalhub_policy_memo_hits", "Decisions answered from the memo.", value=hits
        )
        yield CounterMetricFamily(
            "signalhub_policy_memo_misses", "Decisions the policy engine evaluated.", value=misses
        )
        ratio = GaugeMetricFamily(
            "signalhub_policy_memo_hit_ratio", "Memo hits / all decisions since start (0 if none)."
        )
        ratio.add_metric([], hits / (hits + misses) if hits + misses else 0.0)
        yield ratio


@dataclass
class MetricsExporter:
    """A running loopback metrics server; :meth:`close` stops it and removes the port file."""

    port: int
    port_file: Path
    metrics: EnforcerMetrics
    _server: Any
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.port_file.unlink(missing_ok=True)


def enforcer_metrics_url(settings: Settings) -> str | None:
    """The enforcer exporter's URL from its port file, or None when no enforcer wrote one."""
    try:
        port = int((settings.state_dir / ENFORCER_PORT_FILE).read_text("utf-8").strip())
    except (OSError, ValueError):
        return None
    return f"http://127.0.0.1:{port}/metrics"


def scrape_enforcer(settings: Settings, *, timeout_s: float = 2.0) -> str | None:
    """The enforcer's metrics text, or None when it is not running or does not answer."""
    url = enforcer_metrics_url(settings)
    if url is None:
        return None
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


@dataclass(frozen=True)
class MetricsSnapshot:
    """Parsed samples: ``(name, sorted label items) -> value``, with sum helpers."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, items), value in self.samples.items()
            if sample == name and wanted <= set(items)
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """Values of ``name`` summed per value of one label."""
        out: dict[str, float] = {}
        for (sample, items), value in self.samples.items():
            if sample == name:
                key = dict(items).get(label)
                if key is not None:
                    out[key] = out.get(key, 0.0) + value
        return {key: out[key] for key in sorted(out)}

    def labelled(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [
            (dict(items), value)
            for (sample, items), value in sorted(self.samples.items())
            if sample == name
        ]


def parse_metrics(text: str) -> MetricsSnapshot:
    """Parse Prometheus text with prometheus_client's own parser."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return MetricsSnapshot(samples)
