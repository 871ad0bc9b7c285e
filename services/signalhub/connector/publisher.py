"""Publishing signal records to Kafka: one topic per signal type, keyed by signal id.

Why kafka-python: it is synchronous, which suits a connector that reads, maps and publishes in
one loop. ``acks="all"`` and :meth:`KafkaPublisher.flush` before the runner commits a source
position make a signal durable before the agency's record counts as handled.

The producer is not idempotent: against the durable embedded broker a fresh idempotent producer
was once answered ``UnknownProducerIdError`` on every send for the whole 30 s flush timeout
(the hub was ready, the first HTTP batch got 503). A retried send may so write a signal twice;
signal ids are derived from the source record and every consumer de-duplicates on them.

:class:`Publisher` is the seam: the runner and the ingest endpoint only know this protocol, so
their core is tested with :class:`CollectingPublisher` and the wiring once with the real broker.
"""

from __future__ import annotations

from typing import Any, Protocol

from signalhub.broker.clients import KafkaConnection, new_producer
from signalhub.errors import BrokerError

__all__ = ["CollectingPublisher", "KafkaPublisher", "Publisher"]


class Publisher(Protocol):
    """Sends keyed bytes to a topic; ``flush`` returns only when everything sent is durable."""

    def publish(self, topic: str, key: bytes, value: bytes) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class KafkaPublisher:
    """A kafka-python producer with ``acks=all``; delivery failures surface at ``flush``."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "signalhub-connector",
        flush_timeout_s: float = 30.0,
        **producer_config: Any,
    ) -> None:
        from kafka.errors import KafkaError  # imported here: no import-time cost for non-publishers

        config: dict[str, Any] = {
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": False,  # see the module docstring
            "linger_ms": 5,
            "retries": 5,
            "max_block_ms": 15_000,
            "bootstrap_timeout_ms": 10_000,
            **producer_config,
        }
        try:
            self._producer = new_producer(KafkaConnection(bootstrap_servers), **config)
        except KafkaError as exc:
            raise BrokerError(
                f"cannot connect to Kafka at {bootstrap_servers}: {type(exc).__name__} — "
                "start the hub (signalhub up) or fix --bootstrap-servers"
            ) from exc
        self._kafka_error = KafkaError
        self._flush_timeout_s = flush_timeout_s
        self._pending: list[Any] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            self._pending.append(self._producer.send(topic, key=key, value=value))
        except self._kafka_error as exc:
            raise BrokerError(f"cannot send to {topic}: {type(exc).__name__}") from exc

    def flush(self) -> None:
        """Wait for every pending send; BrokerError when any of them failed."""
        pending, self._pending = self._pending, []
        try:
            self._producer.flush(timeout=self._flush_timeout_s)
        except self._kafka_error as exc:
            raise BrokerError(
                f"Kafka did not confirm {len(pending)} record(s): {type(exc).__name__} — "
                "the source position was not committed; run the connector again"
            ) from exc
        failed = [future for future in pending if future.failed() or not future.is_done]
        if failed:
            first = failed[0].exception
            reason = type(first).__name__ if first is not None else "timeout"
            raise BrokerError(
                f"Kafka refused {len(failed)} of {len(pending)} record(s) ({reason}) — "
                "the source position was not committed; run the connector again"
            )

    def close(self) -> None:
        self._producer.close(timeout=self._flush_timeout_s)


class CollectingPublisher:
    """Keeps what it is given, in order: the publisher for dry runs and for tests of the core."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushes = 0

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        """Nothing to release."""
