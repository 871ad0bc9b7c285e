"""The hub's HTTP service and the long-running ``signalhub up``.

One Starlette app on loopback serves what people and systems reach over HTTP: the console
(operators, security officers, auditors; ``/metrics``, ``/healthz``, ``/readyz``), the ingest
endpoint (``POST /ingest/<agency>``, a bearer token per agency) and the pull API
(``GET /v1/deliveries``, a bearer token per subscriber). Webhook subscribers are pushed to by
one :class:`~signalhub.delivery.webhook.WebhookPusher` thread each, and the audit topic is moved
into the audit store while the hub runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from signalhub.apps.demo import prepare_settings, run_stack
from signalhub.apps.stack import BundlerProcess
from signalhub.audit.backends import open_store
from signalhub.audit.ingest import AuditIngestor, audit_registry
from signalhub.broker.connect import advertise, connect
from signalhub.config import Settings, settings_env
from signalhub.connector.definition import load_definitions
from signalhub.connector.ingest import ingest_routes, tokens_from_env
from signalhub.connector.publisher import KafkaPublisher
from signalhub.connector.runner import ConnectorRunner, RejectFile
from signalhub.console import console_routes
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.pull_api import pull_app
from signalhub.delivery.secrets import SubscriberSecrets
from signalhub.delivery.webhook import webhook_pushers
from signalhub.net import check_port_free
from signalhub.policy.lifecycle import restore_policy_in_force
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, load_subscriptions

__all__ = ["build_http_app", "run_hub", "serve_http"]

logger = logging.getLogger(__name__)
Echo = Callable[[str], None]


def build_http_app(settings: Settings, bootstrap: str, stack: ExitStack) -> Starlette:
    """Ingest + pull API; the clients it opens are closed by ``stack``."""
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    definitions = load_definitions(settings.connectors_dir)
    publisher = KafkaPublisher(bootstrap)
    stack.callback(publisher.close)
    runners = {
        name: ConnectorRunner(
            definition,
            registry,
            publisher,
            rejects=RejectFile(settings.state_dir / "rejects" / f"{name}.jsonl"),
            max_record_bytes=settings.max_record_bytes,
        )
        for name, definition in definitions.items()
    }
    catalog = stack.enter_context(ViewSchemaCatalog(bootstrap, registry))
    subscriptions = load_subscriptions(settings.subscriptions_file, registry.signal_types())
    pull_subscribers = {s.subscriber for s in subscriptions if s.channel == "pull"}
    pull = pull_app(
        bootstrap,
        SubscriberSecrets.from_settings(settings),
        catalog,
        allowed_subscribers=pull_subscribers,
    )
    routes = [
        *console_routes(settings, bootstrap, stack),  # /, /console/*, /metrics, /healthz, /readyz
        *ingest_routes(runners, tokens_from_env(definitions)),
        Mount("/", app=pull),
    ]
    return Starlette(routes=routes)


@contextmanager
def running_webhook_pushers(
    settings: Settings, bootstrap: str, subscriptions: list[Subscription]
) -> Iterator[None]:
    """One pushing thread per webhook subscriber, stopped when the block ends."""
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    with ViewSchemaCatalog(bootstrap, registry) as catalog:
        pushers = webhook_pushers(
            bootstrap, subscriptions, SubscriberSecrets.from_settings(settings), catalog
        )
        threads = [
            threading.Thread(target=p.run, name=f"webhook-{p.subscriber}", daemon=True)
            for p in pushers
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            for pusher in pushers:
                pusher.stop()
            for pusher, thread in zip(pushers, threads, strict=True):
                thread.join(timeout=10)
                pusher.close()


@contextmanager
def running_audit_ingest(settings: Settings, bootstrap: str) -> Iterator[None]:
    """Move audit records from the ``audit`` topic into the audit store while the hub runs."""
    stop = threading.Event()
    with open_store(settings) as store:
        ingestor = AuditIngestor(
            store, audit_registry(settings), bootstrap, group=settings.audit_group
        )
        thread = threading.Thread(
            target=ingestor.run,
            kwargs={"follow": True, "stop": stop},
            name="audit-ingest",
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)


def serve_http(settings: Settings, bootstrap: str) -> None:
    """Serve the HTTP app until Ctrl-C / SIGTERM (uvicorn handles the signals)."""
    check_port_free(settings.http_host, settings.http_port)
    with ExitStack() as stack:
        app = build_http_app(settings, bootstrap, stack)
        config = uvicorn.Config(
            app, host=settings.http_host, port=settings.http_port, log_level="warning"
        )
        uvicorn.Server(config).run()


@contextmanager
def _policy_restored(settings: Settings, bootstrap: str, echo: Echo) -> Iterator[None]:
    """Before any worker starts, the last published policy version is back in force."""
    restored = restore_policy_in_force(settings, bootstrap)
    if restored is not None:
        echo(f"  policy {restored} (last published) put back in force")
    yield


def run_hub(settings: Settings, echo: Echo) -> None:
    """Broker (embedded unless configured), one enforcer worker, webhook pushers and HTTP."""
    check_port_free(settings.http_host, settings.http_port)
    settings = prepare_settings(settings)
    subscriptions = load_subscriptions(settings.subscriptions_file)
    with (
        connect(settings, own=True) as bootstrap,
        _policy_restored(settings, bootstrap, echo),
        advertise(settings, bootstrap),
        run_stack(settings, bootstrap, echo),
        BundlerProcess(bootstrap, settings.state_dir / "bundler.log", settings_env(settings)),
        running_webhook_pushers(settings, bootstrap, subscriptions),
        running_audit_ingest(settings, bootstrap),
    ):
        url = f"http://{settings.http_host}:{settings.http_port}/"
        echo(f"signalhub is up: Kafka at {bootstrap}, HTTP at {url} — Ctrl-C stops everything.")
        serve_http(settings, bootstrap)
