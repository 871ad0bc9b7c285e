"""The hub's roles: one process each, one entry point, ``signalhub run ROLE``.

``signalhub up`` starts and supervises exactly these (:mod:`signalhub.apps.supervisor`), and
docker-compose.yml runs the same list as services (the broker there is Apache Kafka, so the
``broker`` role is the embedded mode's only). A test keeps the two lists equal.

Each role blocks until SIGTERM or SIGINT and then stops in order; it exits non-zero when it
cannot go on (the supervisor restarts it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from signalhub.config import Settings
from signalhub.shutdown import stop_on_signals

__all__ = ["CLIENT_ROLES", "ROLES", "hub_topics", "run_role"]

logger = logging.getLogger(__name__)

#: Every role, in start order (the broker first when embedded; stopped in reverse).
ROLES: tuple[str, ...] = ("broker", "enforcer", "bundler", "audit-ingest", "webhooks", "http")
#: The roles that are Kafka clients: all but the embedded broker.
CLIENT_ROLES: tuple[str, ...] = ROLES[1:]

#: Exit code of the broker role when its broker process died under it.
BROKER_DIED = 3


def hub_topics(settings: Settings) -> dict[str, int]:
    """Every topic the roles use, with its partition count (created before any role starts).

    Created up front so that no producer auto-creates one with the broker's default count.
    """
    from signalhub.enforcer.worker import enforcer_topics
    from signalhub.wire import POLICIES_TOPIC

    sources, sinks = enforcer_topics(settings)
    topics = {topic: settings.partitions for topic in sources}
    topics |= {topic: 1 for topic in [*sinks, POLICIES_TOPIC]}
    return topics


def run_role(name: str, settings: Settings) -> None:
    """Run role ``name`` until it is stopped; blocks."""
    if name == "broker":
        _run_broker(settings)
        return
    from signalhub.broker.connect import connect

    runner = _CLIENT_RUNNERS[name]
    # An external Kafka (also the broker `up` hands its roles) is checked first, so that a role
    # that cannot reach or authenticate to it exits at once with the cause in one line.
    with connect(settings, require_hub=not settings.embedded) as bootstrap_servers:
        runner(settings, bootstrap_servers)


def _run_broker(settings: Settings) -> None:
    """The embedded broker until SIGTERM; exits with :data:`BROKER_DIED` if it dies under us."""
    from signalhub.broker.connect import advertise
    from signalhub.broker.embedded import EmbeddedBroker

    durable = settings.broker_storage == "durable"
    broker = EmbeddedBroker(
        port=settings.embedded_broker_port or None,
        data_dir=settings.state_dir.resolve() / "broker" if durable else None,
        supervise=False,
    )
    stop = stop_on_signals()
    broker.start()
    storage = f"durable, in {settings.state_dir / 'broker'}" if durable else "memory"
    logger.warning("embedded broker at %s (%s storage)", broker.bootstrap_servers, storage)
    try:
        with advertise(settings, broker.bootstrap_servers):
            while not stop.wait(0.5):
                if not broker.running:
                    logger.error("the embedded broker died; exiting so that it is restarted")
                    raise SystemExit(BROKER_DIED)
    finally:
        broker.stop()


def _run_enforcer(settings: Settings, bootstrap_servers: str) -> None:
    from signalhub.apps.enforcer import run_enforcer

    run_enforcer(settings, bootstrap_servers)


def _run_bundler(settings: Settings, bootstrap_servers: str) -> None:
    from signalhub.bundling.process import run_bundler

    run_bundler(settings, bootstrap_servers)


def _run_audit_ingest(settings: Settings, bootstrap_servers: str) -> None:
    from signalhub.audit.ingest import run_audit_ingest

    run_audit_ingest(settings, bootstrap_servers, stop=stop_on_signals())


def _run_webhooks(settings: Settings, bootstrap_servers: str) -> None:
    from signalhub.apps.serve import running_webhook_pushers
    from signalhub.subscriptions import load_subscriptions

    stop = stop_on_signals()
    with running_webhook_pushers(
        settings, bootstrap_servers, load_subscriptions(settings.subscriptions_file)
    ):
        stop.wait()


def _run_http(settings: Settings, bootstrap_servers: str) -> None:
    from signalhub.apps.serve import serve_http

    serve_http(settings, bootstrap_servers)


_CLIENT_RUNNERS: dict[str, Callable[[Settings, str], None]] = {
    "enforcer": _run_enforcer,
    "bundler": _run_bundler,
    "audit-ingest": _run_audit_ingest,
    "webhooks": _run_webhooks,
    "http": _run_http,
}
