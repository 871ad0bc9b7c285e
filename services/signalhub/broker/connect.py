"""The one way every command finds its Kafka: an external cluster, the hub's, or its own.

Production mode points at an external Kafka by setting ``SIGNALHUB_BOOTSTRAP_SERVERS``. In
embedded mode a running ``signalhub up`` advertises its broker in the state directory, so that
other commands join it instead of starting an empty broker of their own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from signalhub.broker.embedded import EmbeddedBroker, RestartCallback, port_open
from signalhub.config import Settings

__all__ = ["ADVERTISED_BROKER_FILE", "advertise", "advertised_broker", "connect"]

logger = logging.getLogger(__name__)

#: File in the state directory where a running ``signalhub up`` advertises its embedded broker.
ADVERTISED_BROKER_FILE = "broker.address"


@contextlib.contextmanager
def connect(
    settings: Settings, *, on_restart: RestartCallback | None = None, own: bool = False
) -> Iterator[str]:
    """Yield the bootstrap servers every command uses.

    An external Kafka (``settings.bootstrap_servers`` set) is yielded unchanged. In embedded
    mode a command joins the broker that a running ``signalhub up`` advertises in its state
    directory, so ``signalhub subscribe``, ``audit ingest`` or a second ``signalhub enforcer``
    see the hub's topics; with ``own=True``, or when no hub runs, an embedded broker is started
    for the duration of the block, supervised, with ``on_restart`` registered so the caller can
    restart its clients when the broker came back empty.
    """
    if not settings.embedded:
        yield settings.bootstrap_servers
        return
    running = None if own else advertised_broker(settings)
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
    try:
        address = (settings.state_dir / ADVERTISED_BROKER_FILE).read_text("utf-8").strip()
    except OSError:
        return None
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not port_open(host, int(port)):
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
