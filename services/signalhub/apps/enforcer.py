"""The enforcer role: its core built from the settings, observed by its metrics, run by faust.

The composition root of ``signalhub enforcer`` (one worker process). What the enforcer package
must not know is read here and handed in: the settings, the keys and the vault they name, and
the connector definitions (which agencies publish each signal type, to warm the policy memo with
the inputs their signals can give). :mod:`signalhub.enforcer.worker` is the faust edge that
reads, calls the core and produces; :mod:`signalhub.enforcer.core` decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime

import faust

from signalhub.apps.publishers import publishing_agencies
from signalhub.audit import record as audit_record
from signalhub.config import Settings
from signalhub.enforcer.core import Enforcement
from signalhub.enforcer.metrics import EnforcerMetrics
from signalhub.enforcer.worker import build_enforcer_app
from signalhub.policy.corpus import policy_corpus
from signalhub.policy.switch import SwitchablePolicy, engine_from_settings
from signalhub.pseudonym.keys import load_key_ring
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.pseudonym.vault import Vault, VaultSink
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, by_signal_type, load_subscriptions
from signalhub.types import JSON

__all__ = ["build_enforcement", "run_enforcer"]


def build_enforcement(settings: Settings) -> tuple[Enforcement, EnforcerMetrics]:
    """The pure core configured from files and keys, and the metrics observing it (no broker).

    The policy is the files in ``policies/`` until the watcher (``build_enforcer_app``) puts a
    published version in force.
    """
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    subscriptions = by_signal_type(
        load_subscriptions(settings.subscriptions_file, registry.signal_types())
    )
    policy = SwitchablePolicy(
        engine_from_settings(settings),
        warm_with=lambda: _every_policy_input(settings, registry, subscriptions),
    )
    metrics = EnforcerMetrics(policy)
    ring = load_key_ring(settings)
    enforcement = Enforcement(
        registry,
        subscriptions,
        policy,
        Pseudonymiser(ring.key(), ring.current),
        audit_record.load_audit_schema(settings.schemas_dir),
        max_record_bytes=settings.max_record_bytes,
        pseudonym_sink=VaultSink(Vault.open(settings)),
        leak_guard=settings.leak_guard,
        observer=metrics,
    )
    return enforcement, metrics


def _every_policy_input(
    settings: Settings,
    registry: SchemaRegistry,
    subscriptions: Mapping[str, Sequence[Subscription]],
) -> Iterator[JSON]:
    """What the memo is warmed with: the inputs the publishers' signals can give today."""
    today = datetime.now(UTC).date()
    agencies = publishing_agencies(settings.connectors_dir)
    cases = policy_corpus(registry, subscriptions, today, sources=agencies)
    return (case.policy_input for case in cases)


def run_enforcer(settings: Settings, bootstrap_servers: str, *, loglevel: str = "warning") -> None:
    """Run the enforcer worker until it is stopped (SIGINT/SIGTERM); blocks."""
    enforcement, metrics = build_enforcement(settings)
    # A loopback /metrics for the console, which finds the port in the state directory.
    exporter = metrics.serve(settings.state_dir, settings.enforcer_metrics_port)
    app = build_enforcer_app(settings, bootstrap_servers, enforcement)
    for noisy in ("aiokafka", "faust", "mode"):
        # Under a faust worker the root logger stays at DEBUG; building and discarding the
        # libraries' debug records on the send path cost ~11% throughput (DESIGN.md).
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # a terminal spinner only writes escape codes into the worker's log
    try:
        worker.execute_from_commandline()
    finally:
        exporter.close()
