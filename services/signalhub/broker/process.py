"""Native helper processes the hub owns (tansu, s3rver): spawned, watched, and never orphaned.

Such a process would happily outlive us and keep a port, memory and open files. So each one runs
in its own process group (a terminal's Ctrl-C does not race our orderly stop), is stopped
SIGTERM-then-SIGKILL, is stopped by an ``atexit`` hook if still running, and on Linux gets the
parent-death signal (:mod:`signalhub.broker.children`), which makes the kernel kill it when we
die, even by SIGKILL. That signal fires when the *thread* that spawned the child exits, so every
service spawns its processes from an :class:`Owner` thread that lives exactly as long as they do.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Protocol

from signalhub.broker.children import child_preexec

__all__ = ["LIVE", "Child", "Owner", "StopAtExit", "free_port", "port_open"]

_TAIL_LINES = 40


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


class Child:
    """One running native process in its own process group, with the tail of its output kept.

    Spawn it from the thread that should own it (see the module docstring). ``OSError`` from
    the spawn is the caller's to explain.
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,  # own process group: stopped by us, not by a tty signal
            preexec_fn=child_preexec(os.getpid()),
        )
        if self._proc.stdout is not None:  # always, with stdout=PIPE; narrows the type
            threading.Thread(
                target=self._drain, args=(self._proc.stdout,), name=f"{name}-log", daemon=True
            ).start()

    @property
    def pid(self) -> int | None:
        """Process id (also its process group id) while it runs, else None."""
        return self._proc.pid if self._proc.poll() is None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def tail_text(self) -> str:
        """The last lines of its output, for error messages."""
        time.sleep(0.05)  # let the drain thread catch the last lines of a dying process
        return "\n".join(self._tail) or "(no output)"

    def terminate(self, grace_s: float) -> None:
        """SIGTERM to its process group, SIGKILL after ``grace_s``; returns once it is reaped."""
        proc = self._proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def _drain(self, stream: IO[bytes]) -> None:
        """Keep the last lines of output (a full pipe would block the process)."""
        with stream:
            for raw in stream:
                self._tail.append(raw.decode("utf-8", "replace").rstrip())


class Owner:
    """The thread that spawns a service's processes, watches them, and stops them.

    ``spawn_ready`` runs first on the thread and must return once the service answers; what it
    raises is re-raised by :meth:`start` in the caller's thread. Then ``watch`` runs every
    ``poll_interval_s`` until :meth:`stop`, and ``terminate`` last (also after a failed start).
    """

    def __init__(
        self,
        name: str,
        *,
        spawn_ready: Callable[[], None],
        watch: Callable[[], None],
        terminate: Callable[[], None],
        poll_interval_s: float,
    ) -> None:
        self._spawn_ready = spawn_ready
        self._watch = watch
        self._terminate = terminate
        self._poll_interval_s = poll_interval_s
        self._stop_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._outcome: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()
        error = self._outcome.get()
        if error is not None:
            self._thread.join()
            raise error

    def stop(self, timeout_s: float) -> None:
        """Ask the thread to stop its processes and wait for it (unless it is the caller)."""
        self._stop_requested.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self._spawn_ready()
        except BaseException as exc:  # re-raised by start() in the caller's thread
            self._terminate()
            self._outcome.put(exc)
            return
        self._outcome.put(None)
        while not self._stop_requested.wait(self._poll_interval_s):
            self._watch()
        self._terminate()


class _Stoppable(Protocol):
    def stop(self) -> None: ...


class StopAtExit:
    """Services still running, stopped by one ``atexit`` hook registered on first use."""

    def __init__(self) -> None:
        self._services: weakref.WeakSet[_Stoppable] = weakref.WeakSet()
        self._registered = False
        self._lock = threading.Lock()

    def add(self, service: _Stoppable) -> None:
        with self._lock:
            if not self._registered:
                atexit.register(self.stop_all)
                self._registered = True
            self._services.add(service)

    def discard(self, service: _Stoppable) -> None:
        with self._lock:
            self._services.discard(service)

    def stop_all(self) -> None:
        for service in list(self._services):
            service.stop()


#: The one registry of every service this process started.
LIVE = StopAtExit()
