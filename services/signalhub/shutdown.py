"""How a long-running role learns that it should stop: SIGTERM (a supervisor, compose) or SIGINT.

Every role that loops on its own (broker, bundler, audit ingest, webhooks) waits on the event
this returns and finishes what it is doing before it leaves; faust and uvicorn handle the
signals themselves.
"""

from __future__ import annotations

import logging
import signal
import threading

__all__ = ["stop_on_signals"]

logger = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (installs the handlers; call from the main thread)."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        logger.info("signal %d: stopping after the work in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
