"""Webhook push: POST each delivery, signed, to the subscriber's URL; never drop one.

For a subscriber with ``channel = "webhook"`` a consumer in group ``signalhub-webhook-<subscriber>``
reads ``deliveries.<subscriber>`` and POSTs each delivery as JSON (the shape of
:meth:`~signalhub.delivery.reader.DeliveredRecord.to_json`) with the headers

- ``X-Signalhub-Delivery-Id``: de-duplicate on it (delivery is at-least-once),
- ``X-Signalhub-Timestamp``: Unix seconds when this attempt was signed,
- ``X-Signalhub-Signature``: ``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``.

Connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter
(``Retry-After`` honoured, capped); other answers are permanent. A delivery that cannot be
pushed is written, unchanged, to ``deliveries.<subscriber>.failed`` with the reason in its
headers. The consumer commits a delivery's offset only after a 2xx or after that write was
acknowledged, so a crash re-sends rather than loses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from signalhub.broker.clients import KafkaConnection, new_producer
from signalhub.broker.reader import open_consumer
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import decode_delivery
from signalhub.delivery.secrets import SubscriberSecrets
from signalhub.errors import BrokerError, DeliveryError, RecordError, SchemaError
from signalhub.subscriptions import Subscription
from signalhub.wire import (
    DELIVERY_ID_HEADER,
    FAILED_AT_HEADER,
    FAILURE_ATTEMPTS_HEADER,
    FAILURE_DETAIL_HEADER,
    FAILURE_REASON_HEADER,
    deliveries_topic,
    failed_topic,
    header,
)

__all__ = [
    "DELIVERY_ID_HTTP_HEADER",
    "SIGNATURE_HTTP_HEADER",
    "TIMESTAMP_HTTP_HEADER",
    "Outcome",
    "RetryPolicy",
    "WebhookPusher",
    "sign",
    "verify_signature",
    "webhook_pushers",
]

logger = logging.getLogger(__name__)

DELIVERY_ID_HTTP_HEADER = "X-Signalhub-Delivery-Id"
TIMESTAMP_HTTP_HEADER = "X-Signalhub-Timestamp"
SIGNATURE_HTTP_HEADER = "X-Signalhub-Signature"
_RETRIABLE_STATUS = frozenset({408, 429})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_s: float = 300.0,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: True when ``signature`` is the hub's over this exact body and timestamp.

    Pass the raw request body (before any JSON parsing) and the ``X-Signalhub-Timestamp`` and
    ``X-Signalhub-Signature`` headers. A timestamp more than ``tolerance_s`` from ``now`` fails,
    so a captured request cannot be replayed later; de-duplicate on the delivery id as well.
    """
    try:
        stamped = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - stamped) > tolerance_s:
        return False
    expected = sign(secret, str(stamped), body)
    return hmac.compare_digest(
        expected.encode("ascii"), signature.strip().encode("ascii", "replace")
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits about ``base * 2**(n-1)``, capped."""

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based); half fixed, half random."""
        ceiling: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        wait: float = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay_s))
        return wait


@dataclass(frozen=True)
class Outcome:
    """How pushing one delivery ended: ``ok`` after a 2xx, else the reason it was given up."""

    ok: bool
    attempts: int
    reason: str
    detail: str = ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


class WebhookPusher:
    """Pushes one subscriber's deliveries to its webhook URL(s).

    ``urls`` maps signal type to URL (a subscriber may have webhook subscriptions for several
    types); a plain string serves every type. A delivery of a type without a webhook URL is
    skipped here: it reaches the subscriber through its other channel.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        subscriber: str,
        urls: str | Mapping[str, str],
        secret: str,
        catalog: ViewSchemaCatalog,
        *,
        retry: RetryPolicy | None = None,
        client: httpx.Client | None = None,
        session_timeout_ms: int = 6000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.subscriber = subscriber
        self.topic = deliveries_topic(subscriber)
        self.failed_topic = failed_topic(subscriber)
        self._urls = urls
        self._secret = secret
        self._catalog = catalog
        self.retry = retry or RetryPolicy()
        self._client = client or httpx.Client(timeout=self.retry.timeout_s, follow_redirects=False)
        self._owns_client = client is None
        self._clock = clock
        self._stop = threading.Event()
        self._consumer = open_consumer(
            bootstrap_servers,
            group_id=f"signalhub-webhook-{subscriber}",
            client_id=f"signalhub-webhook-{subscriber}",
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 3, 1000),
        )
        self._consumer.subscribe([self.topic])
        try:
            self._producer = new_producer(
                KafkaConnection(bootstrap_servers), acks="all", client_id="signalhub-webhook"
            )
        except Exception as exc:
            self._consumer.close()
            raise BrokerError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc

    # -- one delivery ----------------------------------------------------------------------

    def url_for(self, signal_type: str) -> str | None:
        if isinstance(self._urls, str):
            return self._urls
        return self._urls.get(signal_type)

    def post(self, url: str, delivery_id: str, body: bytes) -> Outcome:
        """POST ``body`` until a 2xx, a permanent answer, the attempt limit, or :meth:`stop`."""
        reason, detail = "not_attempted", ""
        for attempt in range(1, self.retry.max_attempts + 1):
            timestamp = str(int(self._clock()))
            headers = {
                "Content-Type": "application/json",
                DELIVERY_ID_HTTP_HEADER: delivery_id,
                TIMESTAMP_HTTP_HEADER: timestamp,
                SIGNATURE_HTTP_HEADER: sign(self._secret, timestamp, body),
            }
            retry_after = None
            try:
                response = self._client.post(url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                reason, detail = "timeout", type(exc).__name__
            except httpx.TransportError as exc:
                reason, detail = "connection_error", type(exc).__name__
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return Outcome(True, attempt, "delivered")
                reason, detail = f"http_{status}", response.reason_phrase
                if status < 500 and status not in _RETRIABLE_STATUS:
                    return Outcome(False, attempt, reason, detail)  # permanent: do not hammer
                retry_after = _retry_after(response)
            if attempt == self.retry.max_attempts:
                break
            if self._stop.wait(self.retry.delay(attempt, retry_after)):
                return Outcome(False, attempt, "stopped", detail)
        return Outcome(False, self.retry.max_attempts, reason, detail)

    def process(self, message: Any) -> Outcome:
        """Push one Kafka message; a failure goes to the failed topic (raises if that fails)."""
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        try:
            delivered = decode_delivery(self._catalog, message)
        except (RecordError, SchemaError) as exc:
            outcome = Outcome(False, 0, "undecodable", type(exc).__name__)
        else:
            url = self.url_for(delivered.signal_type)
            if url is None:
                logger.debug("%s: no webhook for %s, skipped", where, delivered.signal_type)
                return Outcome(True, 0, "no_webhook")
            body = json.dumps(delivered.to_json(), separators=(",", ":"), ensure_ascii=False)
            outcome = self.post(url, delivered.delivery_id, body.encode("utf-8"))
        delivery_id = header(message, DELIVERY_ID_HEADER) or "?"
        if outcome.ok:
            logger.info("%s: delivery %s pushed (attempt %d)", where, delivery_id, outcome.attempts)
        elif outcome.reason != "stopped":
            self._write_failed(message, outcome)
            logger.warning(
                "%s: delivery %s not pushed (%s after %d attempts), kept in %s",
                where,
                delivery_id,
                outcome.reason,
                outcome.attempts,
                self.failed_topic,
            )
        return outcome

    def _write_failed(self, message: Any, outcome: Outcome) -> None:
        headers = list(message.headers or [])
        headers += [
            (FAILURE_REASON_HEADER, outcome.reason.encode()),
            (FAILURE_DETAIL_HEADER, outcome.detail.encode()),
            (FAILURE_ATTEMPTS_HEADER, str(outcome.attempts).encode()),
            (FAILED_AT_HEADER, datetime.now(UTC).isoformat().encode()),
        ]
        try:
            future = self._producer.send(
                self.failed_topic, key=message.key, value=message.value, headers=headers
            )
            future.get(timeout=self.retry.timeout_s)
        except Exception as exc:
            raise DeliveryError(
                f"cannot write a failed delivery to {self.failed_topic}: {exc} — it stays "
                "uncommitted and is retried when the pusher restarts; check the broker"
            ) from exc

    # -- the loop --------------------------------------------------------------------------

    def run_once(self, timeout_ms: int = 1000) -> list[Outcome]:
        """Poll once and push what came; each offset is committed after its outcome is final."""
        outcomes: list[Outcome] = []
        batch = self._consumer.poll(timeout_ms=timeout_ms)
        for tp, messages in batch.items():
            for message in messages:
                outcome = self.process(message)
                if outcome.reason == "stopped":
                    return outcomes  # uncommitted: sent again after a restart
                self._commit(tp, message.offset + 1)
                outcomes.append(outcome)
        return outcomes

    def _commit(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})

    def run(self) -> None:
        """Push until :meth:`stop` is called (from another thread or a signal handler)."""
        logger.info("webhook pusher for %s started", self.subscriber)
        while not self._stop.is_set():
            self.run_once()
        logger.info("webhook pusher for %s stopped", self.subscriber)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._consumer.close()
        self._producer.close()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> WebhookPusher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def webhook_pushers(
    bootstrap_servers: str,
    subscriptions: Iterable[Subscription],
    secrets: SubscriberSecrets,
    catalog: ViewSchemaCatalog,
    **options: Any,
) -> list[WebhookPusher]:
    """One pusher per subscriber with an active webhook subscription (URL per signal type).

    Run each with ``threading.Thread(target=pusher.run)``; stop with ``pusher.stop()`` and
    ``pusher.close()``.
    """
    urls: dict[str, dict[str, str]] = {}
    for subscription in subscriptions:
        if subscription.active and subscription.channel == "webhook" and subscription.webhook_url:
            for signal_type in subscription.signal_types:
                urls.setdefault(subscription.subscriber, {})[signal_type] = subscription.webhook_url
    return [
        WebhookPusher(
            bootstrap_servers, name, by_type, secrets.webhook_secret(name), catalog, **options
        )
        for name, by_type in sorted(urls.items())
    ]
