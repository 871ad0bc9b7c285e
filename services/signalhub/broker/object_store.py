"""The local object store that makes the embedded broker durable: s3rver over a data directory.

tansu 0.6.0 keeps its data either in memory (lost on every restart) or in an S3 bucket; its
PostgreSQL engine is not compiled in and ``file://`` is refused. So durable mode runs s3rver
(3.7.1, pinned in ``deploy/s3rver``), a small S3-compatible server that keeps each object as
a file under the data directory, on a free loopback port with one bucket, ``tansu``. Only this
process's tansu talks to it (fixed S3RVER credentials, loopback only).

The data directory is locked while a store runs over it: two stores (two hubs on one state
directory) would each accept writes and silently overwrite the other's.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import IO

from signalhub.broker.process import LIVE, Child, Owner, free_port, port_open
from signalhub.config import project_root
from signalhub.errors import BrokerError

__all__ = ["BUCKET", "ObjectStore", "resolve_s3rver"]

logger = logging.getLogger(__name__)

#: The one bucket tansu writes to (``--storage-engine s3://tansu/``).
BUCKET = "tansu"
#: s3rver's fixed credentials; the store is reachable from this machine only.
_ACCESS_KEY = "S3RVER"
_LOCK_FILE = ".lock"  # s3rver lists directories as buckets, so a file here is ignored


class ObjectStore:
    """s3rver on a loopback port over ``data_dir`` (mode 0700), owned by this process.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. The port is picked on
    the first start and kept, so a restarted store is found where tansu expects it. It does not
    restart itself: :class:`~signalhub.broker.embedded.EmbeddedBroker` watches it.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        start_timeout_s: float = 15.0,
        stop_grace_s: float = 5.0,
        stop_at_exit: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self._port = port
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._stop_grace_s = stop_grace_s
        self._stop_at_exit = stop_at_exit  # False when a broker owns it and stops it first
        self._child: Child | None = None
        self._owner: Owner | None = None
        self._lock_file: IO[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the object store has no port yet — call start() first")
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, the S3 endpoint tansu is given."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running s3rver (also its process group id), or None."""
        child = self._child
        return None if child is None else child.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def tansu_env(self) -> dict[str, str]:
        """The environment variables that point tansu's ``s3://`` storage at this store."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": _ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": _ACCESS_KEY,
            "AWS_DEFAULT_REGION": "auto",
            "AWS_ALLOW_HTTP": "true",
        }

    def start(self) -> ObjectStore:
        """Start s3rver and return once it accepts connections (its bucket exists by then).

        Raises :class:`BrokerError` when s3rver is not installed, another process uses the data
        directory, or s3rver exits or does not listen within ``start_timeout_s``.
        """
        with self._lock:
            if self._owner is not None and self._owner.alive:
                return self
            binary = self._binary or resolve_s3rver()
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._take_lock()
            if self._port is None:
                self._port = free_port(self.host)
            owner = Owner(
                f"s3rver-{self._port}",
                spawn_ready=lambda: self._spawn_ready(binary),
                watch=lambda: None,
                terminate=self._terminate,
                poll_interval_s=0.5,
            )
            try:
                owner.start()
            except BaseException:
                self._release_lock()
                raise
            self._owner = owner
            if self._stop_at_exit:
                LIVE.add(self)
            logger.info(
                "object store up at %s over %s (pid %s)", self.endpoint, self.data_dir, self.pid
            )
            return self

    def stop(self) -> None:
        """Stop s3rver: SIGTERM to its process group, SIGKILL after ``stop_grace_s``."""
        with self._lock:
            owner, self._owner = self._owner, None
            if owner is None:
                return
            owner.stop(self._stop_grace_s + 5.0)
            self._terminate()  # no-op when the owner thread already did it
            self._release_lock()
            LIVE.discard(self)
            logger.info("object store at %s stopped", self.endpoint)

    def __enter__(self) -> ObjectStore:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ObjectStore({self.host}:{self._port}, {self.data_dir}, pid={self.pid})"

    def _spawn_ready(self, binary: str) -> None:
        argv = [binary, "-d", str(self.data_dir), "-a", self.host, "-p", str(self.port)]
        argv += ["--silent", "--configure-bucket", BUCKET]
        try:
            self._child = child = Child(f"s3rver-{self._port}", argv, os.environ)
        except OSError as exc:
            raise BrokerError(f"cannot run s3rver {binary!r}: {exc} — {_install_hint()}") from exc
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if child.pid is None:
                raise BrokerError(
                    f"s3rver exited with code {child.returncode} while starting on "
                    f"{self.endpoint} — is the port taken? its output:\n{child.tail_text()}"
                )
            if port_open(self.host, self.port):  # buckets are configured before it listens
                return
            time.sleep(0.02)
        raise BrokerError(
            f"s3rver did not listen on {self.endpoint} within {self._start_timeout_s:.0f}s — "
            f"check the machine's load; its output:\n{child.tail_text()}"
        )

    def _terminate(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.terminate(self._stop_grace_s)

    def _take_lock(self) -> None:
        handle = (self.data_dir / _LOCK_FILE).open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise BrokerError(
                f"the broker data directory {self.data_dir} is in use by another process — stop "
                "the other hub first, or give this one its own SIGNALHUB_STATE_DIR"
            ) from None
        self._lock_file = handle

    def _release_lock(self) -> None:
        handle, self._lock_file = self._lock_file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def _install_hint() -> str:
    home = project_root()
    return (
        f"install it with `npm ci --prefix {home / 'deploy' / 's3rver'}` (or `make install` in "
        f"{home}), set SIGNALHUB_S3RVER_BIN to an s3rver 3.7 binary, or use the in-memory broker "
        "with SIGNALHUB_BROKER_STORAGE=memory"
    )


def resolve_s3rver() -> str:
    """The s3rver binary: ``SIGNALHUB_S3RVER_BIN``, else the project's pinned one, else PATH."""
    override = os.environ.get("SIGNALHUB_S3RVER_BIN")
    if override:
        if os.access(override, os.X_OK) and Path(override).is_file():
            return override
        raise BrokerError(
            f"SIGNALHUB_S3RVER_BIN={override} is not an executable file — {_install_hint()}"
        )
    pinned = project_root() / "deploy" / "s3rver" / "node_modules" / ".bin" / "s3rver"
    if os.access(pinned, os.X_OK):
        return str(pinned)
    found = shutil.which("s3rver")
    if found:
        return found
    raise BrokerError(
        f"s3rver, the object store of the durable embedded broker, is not installed — "
        f"{_install_hint()}"
    )
