"""The one way every command finds its Kafka: an external cluster, the hub's, or its own.

Production mode points at an external Kafka by setting ``SIGNALHUB_BOOTSTRAP_SERVERS``. In
embedded mode a running ``signalhub up`` advertises its broker in the state directory, so that
other commands join it instead of starting an empty broker of their own.

Commands that publish into the hub or read its data (``connector run``, ``subscribe``,
``policy diff``, ``audit ingest``, ``audit reconcile``) pass ``require_hub=True``: a broker of
their own would be empty and gone when they exit, so when no hub runs, or the configured Kafka
does not answer within :data:`~signalhub.broker.probe.PROBE_TIMEOUT_S`, they stop at once with
one line saying what to do (a :class:`~signalhub.errors.BrokerError`, which the CLI prints
as ``Error: ...``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from signalhub.broker.embedded import EmbeddedBroker, RestartCallback, port_open
from signalhub.broker.probe import check_reachable
from signalhub.config import Settings
from signalhub.errors import BrokerError

__all__ = [
    "ADVERTISED_BROKER_FILE",
    "advertise",
    "advertised_broker",
    "connect",
]

logger = logging.getLogger(__name__)

#: File in the state directory where a running ``signalhub up`` advertises its embedded broker.
ADVERTISED_BROKER_FILE = "broker.address"

#: How long a command waits for an advertised broker whose port does not answer: the hub's
#: supervisor restarts a dead broker on the same port within about a second.
_RESTART_GRACE_S = 3.0


@contextlib.contextmanager
def connect(
    settings: Settings,
    *,
    on_restart: RestartCallback | None = None,
    own: bool = False,
    require_hub: bool = False,
) -> Iterator[str]:
    """Yield the bootstrap servers every command uses.

    An external Kafka (``settings.bootstrap_servers`` set) is yielded unchanged. In embedded
    mode a command joins the broker that a running ``signalhub up`` advertises in its state
    directory, so ``signalhub subscribe``, ``audit ingest`` or a second ``signalhub enforcer``
    see the hub's topics; with ``own=True``, or when no hub runs, an embedded broker is started
    for the duration of the block, supervised, with ``on_restart`` registered so the caller can
    restart its clients when the broker came back empty.

    With ``require_hub=True`` nothing is started: an external Kafka must answer a metadata
    request (:func:`check_reachable`) and in embedded mode a running hub must be advertised;
    otherwise :class:`~signalhub.errors.BrokerError` says, in one line, what to do.
    """
    if require_hub and own:
        raise TypeError("connect(): own=True starts a broker, require_hub=True forbids that")
    if not settings.embedded:
        if require_hub:
            check_reachable(settings.bootstrap_servers)
        yield settings.bootstrap_servers
        return
    running = None if own else advertised_broker(settings)
    if running is None and require_hub:
        running = _hub_broker_or_fail(settings)
    if running is not None:
        logger.info("using the running hub's embedded broker at %s", running)
        yield running
        return
    with EmbeddedBroker() as broker:
        if on_restart is not None:
            broker.on_restart(on_restart)
        yield broker.bootstrap_servers


def advertised_broker(settings: Settings) -> str | None:
    """The running hub's embedded broker, if its advertisement is there and the port answers."""
    address = _advertisement(settings)
    if address is None or not _answers(address):
        return None
    return address


@contextlib.contextmanager
def advertise(settings: Settings, bootstrap_servers: str) -> Iterator[None]:
    """Advertise this hub's embedded broker to other commands for the duration of the block."""
    if not settings.embedded:
        yield
        return
    path = settings.state_dir / ADVERTISED_BROKER_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(bootstrap_servers + "\n", encoding="utf-8")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# -- internals ------------------------------------------------------------------------------


def _advertisement_path(settings: Settings) -> Path:
    return settings.state_dir / ADVERTISED_BROKER_FILE


def _advertisement(settings: Settings) -> str | None:
    """The address in the advertisement file, if there is one and it has a port."""
    try:
        address = _advertisement_path(settings).read_text("utf-8").strip()
    except OSError:
        return None
    host, _, port = address.rpartition(":")
    return address if host and port.isdigit() else None


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return port_open(host, int(port))


def _hub_broker_or_fail(settings: Settings) -> str:
    """The advertised broker once it answers (it may be restarting), or a one-line error."""
    path = _advertisement_path(settings).resolve()
    address = _advertisement(settings)
    if address is None:
        raise BrokerError(
            f"no running hub found (looked in {path}): start one with `signalhub up` "
            "(same SIGNALHUB_STATE_DIR), or set SIGNALHUB_BOOTSTRAP_SERVERS to the hub's Kafka"
        )
    deadline = time.monotonic() + _RESTART_GRACE_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if _answers(address):
            return address
    raise BrokerError(
        f"no running hub found: {path} names the broker {address}, which does not answer "
        f"(waited {_RESTART_GRACE_S:.0f} s) — start `signalhub up` again, or set "
        "SIGNALHUB_BOOTSTRAP_SERVERS to the hub's Kafka"
    )
