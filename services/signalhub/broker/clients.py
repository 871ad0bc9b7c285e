"""The one place that builds Kafka clients: producers, consumers, admin clients, the faust app.

Every client is built from a :class:`KafkaConnection` and takes its common options from
:func:`client_options`, the one function that says how to reach Kafka. Security (security
protocol, SASL, TLS files) is added there, as fields of :class:`KafkaConnection` that
:meth:`KafkaConnection.from_settings` fills in, and then reaches every client: the kafka-python
ones directly and faust's aiokafka driver through :func:`_faust_broker_options`. A call site
adds only what is its own (acks, client id, timeouts); ``tests/test_kafka_clients.py`` fails
when any other module of the package constructs a client.

kafka-python and faust are imported when a client is built, not with this module: faust costs
~0.2 s and reads the environment at import, which no kafka-python user should pay for.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signalhub.config import Settings

if TYPE_CHECKING:
    import faust
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

__all__ = [
    "PRODUCER_BATCH_BYTES",
    "PRODUCER_LINGER_S",
    "KafkaConnection",
    "client_options",
    "new_admin",
    "new_consumer",
    "new_faust_app",
    "new_producer",
]

#: The faust producer gathers records this long and up to this size per partition before a
#: request: a 500-signal batch fans out to ~1,700 records, and faust's defaults (no linger,
#: 16 KB) sent them as hundreds of small produce requests (bench/README.md).
PRODUCER_LINGER_S = 0.005
PRODUCER_BATCH_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """How to reach Kafka: what every client shares, whatever its role.

    Build it once per process with :meth:`from_settings`. The embedded broker's own probes,
    and helpers that are handed only bootstrap servers, build it directly.
    """

    #: ``"host:port[,host:port...]"``, as ``connect(settings)`` yields it.
    bootstrap_servers: str

    @classmethod
    def from_settings(cls, settings: Settings, bootstrap_servers: str) -> KafkaConnection:
        """The connection for ``bootstrap_servers``; security settings will be read here."""
        return cls(bootstrap_servers=bootstrap_servers)


def client_options(connection: KafkaConnection) -> dict[str, Any]:
    """The options every client starts from (kafka-python names); the seam for security."""
    return {"bootstrap_servers": connection.bootstrap_servers}


def _with_connection(connection: KafkaConnection, options: dict[str, Any]) -> dict[str, Any]:
    """A site's own options plus the connection's; the connection's are not the site's to change."""
    common = client_options(connection)
    clash = sorted(set(options) & set(common))
    if clash:
        raise TypeError(f"{', '.join(clash)} come from the KafkaConnection, not the call site")
    return {**options, **common}


def new_producer(connection: KafkaConnection, **options: Any) -> KafkaProducer:
    """A kafka-python producer; ``options`` are the site's own (acks, client id, linger...)."""
    from kafka import KafkaProducer

    return KafkaProducer(**_with_connection(connection, options))


def new_consumer(connection: KafkaConnection, **options: Any) -> KafkaConsumer:
    """A kafka-python consumer; ``options`` are the site's own (group, fetch wait, offsets...)."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**_with_connection(connection, options))


def new_admin(connection: KafkaConnection, **options: Any) -> KafkaAdminClient:
    """A kafka-python admin client; ``options`` are the site's own (client id, timeouts)."""
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(**_with_connection(connection, options))


def _faust_broker_options(connection: KafkaConnection) -> dict[str, Any]:
    """:func:`client_options` in faust's terms (security will map to ``broker_credentials``)."""
    common = client_options(connection)
    return {"broker": f"kafka://{common['bootstrap_servers']}"}


def new_faust_app(connection: KafkaConnection, settings: Settings, group: str) -> faust.App:
    """A faust app configured the way the enforcer runs (also the benchmarks' framework floor).

    Raw bytes in and out, no web server (it would bind 0.0.0.0:6066), no tables, reading from the
    earliest offset of a new group, acks from all replicas, and the short fetch wait.
    """
    app = _enforcer_app_type()(
        group,
        **_faust_broker_options(connection),
        web_enabled=False,
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        key_serializer="raw",
        value_serializer="raw",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=PRODUCER_LINGER_S,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        topic_allow_declare=False,
        topic_disable_leader=True,
    )
    app.conf.signalhub_fetch_max_wait_ms = settings.fetch_max_wait_ms
    return app


@functools.cache
def _enforcer_app_type() -> type[faust.App]:
    """faust's App with a short-fetch Kafka consumer, defined on first use (faust loads late).

    faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500`` and tansu holds every fetch
    for the full wait, which put a ~1.3 s floor under latency (DESIGN.md). The consumer thread
    below sets the configured wait (``signalhub_fetch_max_wait_ms``) before the consumer starts.
    """
    import faust
    from faust.transport.drivers import aiokafka as faust_aiokafka

    class _ShortFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        """faust's aiokafka consumer thread with a configurable fetch wait instead of 1500 ms."""

        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # aiokafka reads this attribute when it builds its fetcher in start().
            consumer._fetch_max_wait_ms = self.app.conf.signalhub_fetch_max_wait_ms
            return consumer

    class _Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> _ShortFetchConsumerThread:
            return _ShortFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class _Transport(faust_aiokafka.Transport):
        Consumer = _Consumer

    class _EnforcerApp(faust.App):
        """A faust App whose Kafka transport uses the short-fetch consumer thread."""

        def _new_transport(self) -> Any:
            return _Transport(self.conf.broker_consumer, self)

    return _EnforcerApp
