"""The hub's HTTP role and its webhook role.

One Starlette app on loopback serves what people and systems reach over HTTP: the console
(operators, security officers, auditors; ``/metrics``, ``/healthz``, ``/readyz``), the ingest
endpoint (``POST /ingest/<agency>``, a bearer token per agency), the residents' public
meldpunt form (``/meldpunt``, no session; it files through the ingest endpoint) and the pull API
(``GET /v1/deliveries``, a bearer token per subscriber). Webhook subscribers are pushed to by
one :class:`~signalhub.delivery.webhook.WebhookPusher` thread each (the ``webhooks`` role).
Under ``signalhub up`` ingest answers 503 with the supervisor's reason while the hub cannot take
signals (its broker is down or came back without its data).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from signalhub.apps.hub_state import STALE_S, supervised_hub_state
from signalhub.config import Settings
from signalhub.connector.definition import load_definitions
from signalhub.connector.ingest import ingest_routes, tokens_from_env
from signalhub.connector.mapping import ObservedWindow
from signalhub.connector.meldpunt import CONNECTOR as MELDPUNT
from signalhub.connector.meldpunt import meldpunt_routes
from signalhub.connector.publisher import KafkaPublisher
from signalhub.connector.runner import ConnectorRunner, RejectFile
from signalhub.console import console_routes
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.pull_api import pull_app
from signalhub.delivery.secrets import SubscriberSecrets
from signalhub.delivery.webhook import webhook_pushers
from signalhub.net import check_port_free
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, load_subscriptions

__all__ = ["build_http_app", "ingest_refusal", "running_webhook_pushers", "serve_http"]

logger = logging.getLogger(__name__)


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
            window=ObservedWindow.from_settings(settings),
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
    tokens = tokens_from_env(definitions)
    ingest = ingest_routes(runners, tokens, refusal=ingest_refusal(settings))
    # The public meldpunt files through the same ingest endpoint (one rate limit per token).
    meldpunt = meldpunt_routes(
        Starlette(routes=ingest),
        tokens.get(MELDPUNT),
        reports_per_hour=settings.meldpunt_reports_per_hour,
    )
    routes = [
        *console_routes(settings, bootstrap, stack),  # /, /console/*, /metrics, /healthz, /readyz
        *ingest,
        *meldpunt,  # /meldpunt: public, no console session
        Mount("/", app=pull),
    ]
    return Starlette(routes=routes)


def ingest_refusal(settings: Settings) -> Callable[[], str | None]:
    """Why ingest must refuse right now, from the supervisor's hub state (None: accept).

    Without a supervisor (docker-compose.yml, a bare ``signalhub run http``) there is no hub
    state and the broker's own answers decide.
    """

    def refusal() -> str | None:
        state = supervised_hub_state(settings.state_dir)
        if state is None:
            return None
        if time.time() - state.updated_at > STALE_S:
            return "the hub's supervisor (signalhub up) stopped; signals are not taken"
        return None if state.accepting else state.refusal

    return refusal


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


def serve_http(settings: Settings, bootstrap: str) -> None:
    """Serve the HTTP app until Ctrl-C / SIGTERM (uvicorn handles the signals)."""
    check_port_free(settings.http_host, settings.http_port)
    with ExitStack() as stack:
        app = build_http_app(settings, bootstrap, stack)
        config = uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            # An access log line holds the client address: never for the public meldpunt.
            access_log=False,
        )
        uvicorn.Server(config).run()
