"""The hub's stream processors as child processes of the demo, ``up`` and the integration tests.

The enforcer (``signalhub enforcer``) and the bundler (``signalhub bundler``) each run in their
own process, as they do in production, so that they can be killed mid-stream and restarted
exactly like a crashed worker. The child gets the
kernel's parent-death signal, so it never outlives the command that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Self

from signalhub.broker.children import child_preexec
from signalhub.errors import SignalhubError

__all__ = ["BundlerProcess", "EnforcerProcess", "RoleProcess", "WorkerProcess"]

_STOP_GRACE_S = 20.0


class WorkerProcess:
    """Start, stop and kill one ``signalhub <command>`` worker against given bootstrap servers."""

    def __init__(
        self,
        bootstrap_servers: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        command: str,
        args: tuple[str, ...] = (),
    ) -> None:
        self._command = command
        self._args = args
        self._bootstrap_servers = bootstrap_servers
        self._log_path = log_path
        self._env = env or {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self._log_path

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM) without waiting: stop several at once, then :meth:`stop`."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    @property
    def exit_code(self) -> int | None:
        """The exit code once the process has ended (and been reaped), else None."""
        return None if self._process is None else self._process.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        if self.running:
            return self
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()  # the previous run's, when the process exited on its own
        self._log = self._log_path.open("ab")
        env = {**os.environ, **self._env, "SIGNALHUB_BOOTSTRAP_SERVERS": self._bootstrap_servers}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "signalhub", self._command, *self._args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_preexec(os.getpid()),
        )
        return self

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: the worker commits what it has done), SIGKILL if it hangs."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def kill(self) -> None:
        """Die like a crashed worker: SIGKILL, no commit, no flush."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._close_log()

    def check_alive(self) -> None:
        """Raise with the log's tail if the worker exited on its own."""
        process = self._process
        if process is not None and process.poll() is not None:
            raise SignalhubError(
                f"the {self._command} exited with code {process.returncode} — "
                f"its log ({self._log_path}) ends with:\n{self.log_tail()}"
            )

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class EnforcerProcess(WorkerProcess):
    """One ``signalhub enforcer`` worker (SIGTERM stops it gracefully; kill is a crash)."""

    def __init__(
        self, bootstrap_servers: str, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(bootstrap_servers, log_path, env, command="enforcer")


class BundlerProcess(WorkerProcess):
    """One ``signalhub bundler`` process (SIGTERM stops it after its batch; kill is a crash)."""

    def __init__(
        self, bootstrap_servers: str, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(bootstrap_servers, log_path, env, command="bundler")


class RoleProcess(WorkerProcess):
    """One ``signalhub run ROLE`` process, as ``signalhub up`` supervises it."""

    def __init__(
        self, role: str, bootstrap_servers: str, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(bootstrap_servers, log_path, env, command="run", args=(role,))
        self.role = role
