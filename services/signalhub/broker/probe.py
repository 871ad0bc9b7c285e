"""Does a Kafka answer? One bounded check, with one line that says what to do when it does not.

kafka-python retries a bootstrap server for 30 s and logs every attempt; commands, readiness and
the embedded broker's start need a bounded yes or no instead.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator

from signalhub.broker.clients import KafkaConnection, KafkaSecurity, new_admin
from signalhub.errors import BrokerError

__all__ = ["PROBE_TIMEOUT_S", "check_reachable"]

#: Seconds an external Kafka gets for each of the two steps of the reachability check (connect
#: and fetch metadata, then one metadata request to the broker it advertises): a wrong address
#: fails a command within ~2x this, well inside 10 s, instead of after kafka-python's 30 s.
PROBE_TIMEOUT_S = 3.0


def check_reachable(
    bootstrap_servers: str,
    timeout_s: float = PROBE_TIMEOUT_S,
    *,
    security: KafkaSecurity | None = None,
) -> None:
    """Raise :class:`BrokerError` (one line) unless the Kafka at ``bootstrap_servers`` answers.

    One client bootstraps (a metadata request to a bootstrap server), then asks the brokers
    that metadata names for the topic list, each step bounded by ``timeout_s``. kafka-python
    reports why a connection failed only in its log, retrying meanwhile: its records are kept
    (not shown) during the check and name the cause in the error: TLS verification failed,
    authentication failed, a broker that wants TLS or SASL, or no answer at all. ``security``
    defaults to the process's.
    """
    timeout_ms = int(timeout_s * 1000)
    connection = (
        KafkaConnection(bootstrap_servers)
        if security is None
        else KafkaConnection(bootstrap_servers, security)
    )
    started = time.monotonic()
    with _kept_log("kafka") as records:
        try:
            admin = new_admin(
                connection,
                client_id="signalhub-probe",
                bootstrap_timeout_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
            )
        except Exception as exc:  # every kafka-python failure here means: does not answer
            raise BrokerError(_why(connection, started, exc, records)) from exc
        try:
            admin.list_topics()
        except Exception as exc:  # likewise
            raise BrokerError(_why(connection, started, exc, records)) from exc
        finally:
            admin.close()


_TLS_VERIFY = re.compile(r"certificate verify failed: ?([^(]*)", re.IGNORECASE)
#: How kafka-python words a connection the peer cut or never allowed.
_CUT = ("socket disconnected", "Connection reset by peer", "EOF occurred")


def _why(
    connection: KafkaConnection, started: float, exc: BaseException, records: list[str]
) -> str:
    """The one line that says why ``connection`` failed, from the client's log records."""
    servers = connection.bootstrap_servers
    security = connection.security
    after = f"after {time.monotonic() - started:.1f} s"
    text = "\n".join(records)
    verify = _TLS_VERIFY.search(text)
    if verify:
        return (
            f"TLS verification failed for Kafka at {servers}: certificate verify failed: "
            f"{verify.group(1).strip().rstrip('.')} ({after}) — check SIGNALHUB_KAFKA_SSL_CAFILE "
            "and that the address is a name the brokers' certificates carry"
        )
    if security.uses_tls and "Handshake failed" in text:
        detail = text[text.index("Handshake failed") :].splitlines()[0]
        return (
            f"TLS handshake with Kafka at {servers} failed: {detail} ({after}) — is it a TLS "
            "listener? check SIGNALHUB_KAFKA_SECURITY_PROTOCOL"
        )
    if security.uses_sasl and _authentication_failed(records):
        return (
            f"Kafka authentication failed at {servers}: the broker refused "
            f"{security.sasl_mechanism} as user {security.username!r} ({after}) — check "
            "SIGNALHUB_KAFKA_USERNAME, SIGNALHUB_KAFKA_PASSWORD_FILE and "
            "SIGNALHUB_KAFKA_SASL_MECHANISM"
        )
    if any(cut in text for cut in _CUT):
        return (
            f"cannot reach Kafka at {servers}: the connection was closed at once "
            f"({security.protocol}, {after}) — check SIGNALHUB_BOOTSTRAP_SERVERS, and "
            "SIGNALHUB_KAFKA_SECURITY_PROTOCOL if the brokers require TLS or SASL"
        )
    return (
        f"cannot reach Kafka at {servers} ({type(exc).__name__} {after}) — check "
        "SIGNALHUB_BOOTSTRAP_SERVERS (or --bootstrap-servers) and that the brokers run; unset "
        "it to use a running `signalhub up`"
    )


def _authentication_failed(records: list[str]) -> bool:
    """A SASL exchange was under way or refused: a record names it, or a connection was lost
    for a reason that is no network error (tansu answers a wrong SCRAM proof with an empty
    final message, which kafka-python fails on as ``KeyError: 'v'``)."""
    for record in records:
        if "Sasl" in record or "SASL" in record or "Authentication" in record:
            return True
        lost = record.partition("Connection lost: ")[2]
        if lost and "KafkaConnectionError" not in lost and "Timeout" not in lost:
            return True
    return False


@contextlib.contextmanager
def _kept_log(name: str) -> Iterator[list[str]]:
    """Keep the log records of logger ``name`` (and its children) for the block, unshown."""
    target = logging.getLogger(name)
    records: list[str] = []
    handler = _ListHandler(records)
    previous = (target.level, target.propagate)
    target.setLevel(logging.WARNING)
    target.propagate = False
    target.addHandler(handler)
    try:
        yield records
    finally:
        target.removeHandler(handler)
        target.setLevel(previous[0])
        target.propagate = previous[1]


class _ListHandler(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__(logging.WARNING)
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record.getMessage())
