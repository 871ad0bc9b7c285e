"""Webhook push against the real broker and a real HTTP receiver: signatures, retries, failures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from kafka import KafkaConsumer, TopicPartition
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from delivery_support import (
    fresh_registry,
    nuisance_view,
    produce_deliveries,
    publish_view_schema,
    records_of,
    serve,
)
from signalhub.broker.embedded import EmbeddedBroker, free_port
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.webhook import (
    Outcome,
    RetryPolicy,
    WebhookPusher,
    sign,
    verify_signature,
)
from signalhub.wire import deliveries_topic, failed_topic

pytestmark = pytest.mark.integration

SECRET = "test-webhook-secret"
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, timeout_s=2.0)


@dataclass
class Receiver:
    """Answers with the scripted statuses in turn (then 200) and keeps every request."""

    script: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.requests.append((dict(request.headers), await request.body()))
            status = self.script.pop(0) if self.script else 200
            return Response(status_code=status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@dataclass
class Setup:
    bootstrap: str
    subscriber: str
    ids: list[str]
    catalog: ViewSchemaCatalog


@pytest.fixture
def setup_factory(
    broker: EmbeddedBroker, name_factory: Callable[[str], str]
) -> Iterator[Callable[[int], Setup]]:
    catalogs: list[ViewSchemaCatalog] = []

    def make(count: int) -> Setup:
        subscriber, views = name_factory("hook"), name_factory("views")
        broker.create_topics([deliveries_topic(subscriber), failed_topic(subscriber)])
        registry = fresh_registry()
        view = nuisance_view(registry)
        publish_view_schema(broker.bootstrap_servers, views, view)
        ids = produce_deliveries(broker.bootstrap_servers, subscriber, registry, view, count)
        catalog = ViewSchemaCatalog(broker.bootstrap_servers, fresh_registry(), topic=views)
        catalogs.append(catalog)
        return Setup(broker.bootstrap_servers, subscriber, ids, catalog)

    yield make
    for catalog in catalogs:
        catalog.close()


def _push_all(pusher: WebhookPusher, expected: int, timeout_s: float = 30.0) -> list[Outcome]:
    """Run the pusher until ``expected`` deliveries have a final outcome (the join takes ~3 s)."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + timeout_s
    while len(outcomes) < expected and time.monotonic() < deadline:
        outcomes += pusher.run_once(timeout_ms=200)
    return outcomes


def _committed(setup: Setup) -> int | None:
    consumer = KafkaConsumer(
        bootstrap_servers=setup.bootstrap, group_id=f"signalhub-webhook-{setup.subscriber}"
    )
    try:
        offset: int | None = consumer.committed(TopicPartition(f"deliveries.{setup.subscriber}", 0))
        return offset
    finally:
        consumer.close()


def test_posts_signed_deliveries_that_verify(setup_factory: Callable[[int], Setup]) -> None:
    setup, receiver = setup_factory(3), Receiver()
    with (
        serve(receiver.app()) as url,
        WebhookPusher(
            setup.bootstrap, setup.subscriber, f"{url}/hook", SECRET, setup.catalog, retry=FAST
        ) as pusher,
    ):
        outcomes = _push_all(pusher, 3)
    assert [o.ok for o in outcomes] == [True, True, True]
    assert [h["x-signalhub-delivery-id"] for h, _ in receiver.requests] == setup.ids
    for headers, body in receiver.requests:
        timestamp, signature = headers["x-signalhub-timestamp"], headers["x-signalhub-signature"]
        assert signature.startswith("sha256=")
        assert verify_signature(SECRET, timestamp, body, signature)
        assert not verify_signature("other-secret", timestamp, body, signature)
        assert not verify_signature(SECRET, timestamp, body + b" ", signature)
        document = json.loads(body)
        assert document["delivery_id"] == headers["x-signalhub-delivery-id"]
        assert document["record"]["payload"]["subject_bsn"].startswith("pn1.")
    assert _committed(setup) == 3
    assert records_of(setup.bootstrap, failed_topic(setup.subscriber)) == []


def test_retries_5xx_and_429_then_succeeds(setup_factory: Callable[[int], Setup]) -> None:
    setup, receiver = setup_factory(1), Receiver(script=[503, 429, 502])
    with (
        serve(receiver.app()) as url,
        WebhookPusher(
            setup.bootstrap, setup.subscriber, f"{url}/hook", SECRET, setup.catalog, retry=FAST
        ) as pusher,
    ):
        outcomes = _push_all(pusher, 1)
    assert outcomes == [Outcome(True, 4, "delivered")]
    assert {h["x-signalhub-delivery-id"] for h, _ in receiver.requests} == set(setup.ids)
    assert len(receiver.requests) == 4
    assert _committed(setup) == 1
    assert records_of(setup.bootstrap, failed_topic(setup.subscriber)) == []


def test_permanent_5xx_goes_to_failed_topic_with_reason(
    setup_factory: Callable[[int], Setup],
) -> None:
    setup, receiver = setup_factory(2), Receiver(script=[500] * 8)
    with (
        serve(receiver.app()) as url,
        WebhookPusher(
            setup.bootstrap, setup.subscriber, f"{url}/hook", SECRET, setup.catalog, retry=FAST
        ) as pusher,
    ):
        outcomes = _push_all(pusher, 2)
    assert [(o.ok, o.reason, o.attempts) for o in outcomes] == [(False, "http_500", 4)] * 2
    failed = records_of(setup.bootstrap, failed_topic(setup.subscriber))
    originals = records_of(setup.bootstrap, f"deliveries.{setup.subscriber}")
    assert [m.value for m in failed] == [m.value for m in originals]  # kept unchanged
    headers = dict(failed[0].headers)
    assert headers["signalhub.failure_reason"] == b"http_500"
    assert headers["signalhub.failure_attempts"] == b"4"
    assert headers["signalhub.delivery_id"] == setup.ids[0].encode()
    assert _committed(setup) == 2  # the failed topic holds them now: not sent again


def test_client_error_is_not_retried(setup_factory: Callable[[int], Setup]) -> None:
    setup, receiver = setup_factory(1), Receiver(script=[410])
    with (
        serve(receiver.app()) as url,
        WebhookPusher(
            setup.bootstrap, setup.subscriber, f"{url}/hook", SECRET, setup.catalog, retry=FAST
        ) as pusher,
    ):
        outcomes = _push_all(pusher, 1)
    assert [(o.reason, o.attempts) for o in outcomes] == [("http_410", 1)]
    assert len(receiver.requests) == 1
    failed = records_of(setup.bootstrap, failed_topic(setup.subscriber))
    assert dict(failed[0].headers)["signalhub.failure_reason"] == b"http_410"


def test_unreachable_receiver_goes_to_failed_topic(setup_factory: Callable[[int], Setup]) -> None:
    setup = setup_factory(1)
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    with WebhookPusher(
        setup.bootstrap, setup.subscriber, url, SECRET, setup.catalog, retry=FAST
    ) as pusher:
        outcomes = _push_all(pusher, 1)
    assert [(o.ok, o.reason, o.attempts) for o in outcomes] == [(False, "connection_error", 4)]
    failed = records_of(setup.bootstrap, failed_topic(setup.subscriber))
    assert dict(failed[0].headers)["signalhub.failure_reason"] == b"connection_error"


def test_undecodable_delivery_goes_to_failed_topic(
    broker: EmbeddedBroker, name_factory: Callable[[str], str]
) -> None:
    subscriber = name_factory("hook")
    broker.create_topics([f"deliveries.{subscriber}"])
    registry = fresh_registry()
    bogus = [(b"k", b"\xc3\x01" + b"\x00" * 8 + b"body", [("signalhub.delivery_id", b"d1")])]
    produce_deliveries(
        broker.bootstrap_servers, subscriber, registry, nuisance_view(registry), 0, extra=bogus
    )
    with (
        ViewSchemaCatalog(
            broker.bootstrap_servers, fresh_registry(), topic=name_factory("views")
        ) as catalog,
        WebhookPusher(
            broker.bootstrap_servers, subscriber, "http://127.0.0.1:9/", SECRET, catalog, retry=FAST
        ) as pusher,
    ):
        outcomes = _push_all(pusher, 1)
    assert [(o.reason, o.attempts) for o in outcomes] == [("undecodable", 0)]
    failed = records_of(broker.bootstrap_servers, failed_topic(subscriber))
    assert [m.value for m in failed] == [bogus[0][1]]


@pytest.mark.parametrize(
    ("offset_s", "expected"), [(0, True), (-299, True), (-301, False), (301, False)]
)
def test_verify_signature_enforces_the_time_tolerance(offset_s: int, expected: bool) -> None:
    now = 1_750_000_000
    timestamp = str(now + offset_s)
    signature = sign(SECRET, timestamp, b"{}")
    assert verify_signature(SECRET, timestamp, b"{}", signature, 300, now=now) is expected


def test_verify_signature_rejects_malformed_input() -> None:
    assert not verify_signature(SECRET, "soon", b"{}", sign(SECRET, "1", b"{}"))
    assert not verify_signature(SECRET, str(int(time.time())), b"{}", "sha256=00")


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        delay = policy.delay(attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(1, retry_after=5.0) >= 5.0
    assert policy.delay(1, retry_after=100.0) <= 8.0
