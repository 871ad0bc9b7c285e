"""Does a Kafka answer? One bounded check, with one line that says what to do when it does not.

kafka-python retries a bootstrap server for 30 s and logs every attempt; commands, readiness and
the embedded broker's start need a bounded yes or no instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from signalhub.broker.clients import KafkaConnection, new_admin
from signalhub.errors import BrokerError

__all__ = ["PROBE_TIMEOUT_S", "check_reachable"]

#: Seconds an external Kafka gets for each of the two steps of the reachability check (connect
#: and fetch metadata, then one metadata request to the broker it advertises): a wrong address
#: fails a command within ~2x this, well inside 10 s, instead of after kafka-python's 30 s.
PROBE_TIMEOUT_S = 3.0


def check_reachable(bootstrap_servers: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`BrokerError` (one line) unless the Kafka at ``bootstrap_servers`` answers.

    One client bootstraps (a metadata request to a bootstrap server), then asks the brokers
    that metadata names for the topic list, each step bounded by ``timeout_s``; kafka-python's
    per-attempt log lines are silenced meanwhile, since the error says it all.
    """
    timeout_ms = int(timeout_s * 1000)
    started = time.monotonic()
    with _silenced("kafka"):
        try:
            admin = new_admin(
                KafkaConnection(bootstrap_servers),
                client_id="signalhub-probe",
                bootstrap_timeout_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
            )
        except Exception as exc:  # every kafka-python failure here means: does not answer
            raise BrokerError(_unreachable(bootstrap_servers, started, exc)) from exc
        try:
            admin.list_topics()
        except Exception as exc:  # likewise
            raise BrokerError(_unreachable(bootstrap_servers, started, exc)) from exc
        finally:
            admin.close()


def _unreachable(bootstrap_servers: str, started: float, exc: BaseException) -> str:
    reason = type(exc).__name__
    return (
        f"cannot reach Kafka at {bootstrap_servers} ({reason} after "
        f"{time.monotonic() - started:.1f} s) — check SIGNALHUB_BOOTSTRAP_SERVERS "
        "(or --bootstrap-servers) and that the brokers run; unset it to use a running "
        "`signalhub up`"
    )


@contextlib.contextmanager
def _silenced(name: str) -> Iterator[None]:
    """Drop the log records of logger ``name`` (and its children) for the block."""
    target = logging.getLogger(name)
    previous = target.level
    target.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        target.setLevel(previous)
