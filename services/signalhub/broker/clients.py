"""The one place that builds Kafka clients: producers, consumers, admin clients, the faust app.

Every client is built from a :class:`KafkaConnection` and takes its common options from
:func:`client_options`, the one function that says how to reach Kafka: the bootstrap servers and
the :class:`KafkaSecurity` (security protocol, SASL, TLS), which reach the kafka-python clients
directly and faust's aiokafka driver as ``broker_credentials``. A call site adds only what is its
own (acks, client id, timeouts); ``tests/test_kafka_clients.py`` fails when any other module of
the package constructs a client.

A process has one Kafka identity. The CLI reads it from the settings once, at start
(:func:`use_kafka_security`), and every connection made afterwards carries it, so that code
which is handed only bootstrap servers (most of the package) needs no security parameter. The
embedded broker's loopback listener is plaintext; security settings are for an external Kafka.

kafka-python and faust are imported when a client is built, not with this module: faust costs
~0.2 s and reads the environment at import, which no kafka-python user should pay for.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signalhub.config import Settings
from signalhub.errors import ConfigError

if TYPE_CHECKING:
    import faust
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

__all__ = [
    "PLAINTEXT",
    "PRODUCER_BATCH_BYTES",
    "PRODUCER_LINGER_S",
    "KafkaConnection",
    "KafkaSecurity",
    "client_options",
    "new_admin",
    "new_consumer",
    "new_faust_app",
    "new_producer",
    "use_kafka_security",
]

#: The faust producer gathers records this long and up to this size per partition before a
#: request: a 500-signal batch fans out to ~1,700 records, and faust's defaults (no linger,
#: 16 KB) sent them as hundreds of small produce requests (bench/README.md).
PRODUCER_LINGER_S = 0.005
PRODUCER_BATCH_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How this process proves itself to Kafka and checks Kafka in turn (TLS, SASL)."""

    #: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
    protocol: str = "PLAINTEXT"
    #: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512`` (``SASL_*`` protocols only).
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: CA bundle that signs the brokers' certificates (None: the system's CAs).
    cafile: Path | None = None
    #: Client certificate and key, for brokers that require mutual TLS.
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """The settings' security; the password is read from its file here, never from argv."""
        password: str | None = None
        if settings.kafka_password_file is not None:
            try:
                password = settings.kafka_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read SIGNALHUB_KAFKA_PASSWORD_FILE "
                    f"{settings.kafka_password_file}: {exc.strerror or exc}"
                ) from exc
        return cls(
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_username,
            password=password,
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            check_hostname=settings.kafka_ssl_check_hostname,
        )

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client shares (None without TLS): CA, client cert, hostname."""
        if not self.uses_tls:
            return None
        return _ssl_context(self.cafile, self.certfile, self.keyfile, self.check_hostname)

    def kafka_python_options(self) -> dict[str, Any]:
        """The security options in kafka-python's names."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password
        return options

    def faust_credentials(self) -> Any:
        """faust's ``broker_credentials`` for this security (None: plaintext)."""
        if self.protocol == "PLAINTEXT":
            return None
        from faust.auth import SASLCredentials, SSLCredentials

        context = self.ssl_context()
        if not self.uses_sasl:
            return SSLCredentials(context)
        return SASLCredentials(
            username=self.username,
            password=self.password,
            ssl_context=context,
            mechanism=self.sasl_mechanism,
        )


@functools.cache
def _ssl_context(
    cafile: Path | None, certfile: Path | None, keyfile: Path | None, check_hostname: bool
) -> ssl.SSLContext:
    """One context per set of TLS files, loaded once: a process builds many clients."""
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
        if certfile is not None:
            context.load_cert_chain(str(certfile), str(keyfile) if keyfile is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the Kafka TLS files (SIGNALHUB_KAFKA_SSL_CAFILE, "
            f"SIGNALHUB_KAFKA_SSL_CERTFILE, SIGNALHUB_KAFKA_SSL_KEYFILE): {exc}"
        ) from exc
    context.check_hostname = check_hostname  # the chain is verified either way
    return context


#: No TLS, no SASL: the embedded broker's loopback listener.
PLAINTEXT = KafkaSecurity()

_process_security: KafkaSecurity = PLAINTEXT


def use_kafka_security(security: KafkaSecurity) -> None:
    """Make ``security`` the Kafka identity of every connection this process makes from now on.

    Called once by the CLI with :meth:`KafkaSecurity.from_settings`; a process has one identity.
    """
    global _process_security
    security.ssl_context()  # unreadable TLS files fail here, at start, not in the first client
    _process_security = security


def _current_security() -> KafkaSecurity:
    return _process_security


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """How to reach Kafka: what every client shares, whatever its role.

    ``security`` defaults to the process's (:func:`use_kafka_security`); the embedded broker's
    own probes pass :data:`PLAINTEXT`.
    """

    #: ``"host:port[,host:port...]"``, as ``connect(settings)`` yields it.
    bootstrap_servers: str
    security: KafkaSecurity = field(default_factory=_current_security)

    @classmethod
    def from_settings(cls, settings: Settings, bootstrap_servers: str) -> KafkaConnection:
        """The connection for ``bootstrap_servers`` with the settings' security."""
        return cls(bootstrap_servers, KafkaSecurity.from_settings(settings))


def client_options(connection: KafkaConnection) -> dict[str, Any]:
    """The options every client starts from (kafka-python names): where, and how securely."""
    return {
        "bootstrap_servers": connection.bootstrap_servers,
        **connection.security.kafka_python_options(),
    }


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
    """:func:`client_options` in faust's terms: the broker URL and ``broker_credentials``."""
    servers = connection.bootstrap_servers.split(",")
    options: dict[str, Any] = {"broker": ";".join(f"kafka://{server}" for server in servers)}
    credentials = connection.security.faust_credentials()
    if credentials is not None:
        options["broker_credentials"] = credentials
    return options


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
