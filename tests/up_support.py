"""``signalhub up`` as a user runs it: a subprocess with its own state directory and port.

:class:`RunningHub` starts it, reads what it prints, asks ``/readyz``, reads the supervisor's
hub state (which role runs under which pid), kills roles, and feeds signals through the HTTP
ingest endpoint the way an agency system does.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from hub_support import Delivery, HubSignalIds, gemeente_case, new_person, read_topics
from signalhub.broker.connect import advertised_broker
from signalhub.broker.embedded import free_port
from signalhub.broker.reader import open_consumer
from signalhub.config import Settings, load_settings
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import decode_delivery
from signalhub.schema.registry import SchemaRegistry
from signalhub.wire import subscriber_of

SETTINGS = load_settings()
TOKEN = "test-ingest-token-0123456789"
START_TIMEOUT_S = 120.0
#: The machine's PostgreSQL (trust auth); tests make a schema of their own in it.
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def gemeente_records(prefix: str, count: int) -> list[dict[str, Any]]:
    """``count`` new municipality cases (fresh people and case numbers: new signals)."""
    return [
        gemeente_case(new_person()) | {"zaaknummer": f"Z-{prefix}-{i:05d}"} for i in range(count)
    ]


def postgres_audit_rows(dsn: str) -> list[tuple[str, str, str]]:
    """(entry_id, the body's decision_id, signal_id) of every decision in a PostgreSQL store."""
    with psycopg.connect(dsn, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT entry_id, body::jsonb ->> 'decision_id', signal_id FROM audit_log"
            " WHERE kind = 'decision' ORDER BY seq"
        ).fetchall()
    return [(str(entry), str(decision), str(signal)) for entry, decision, signal in rows]


class RunningHub:
    """One ``signalhub up`` process; use as a context manager (stops it with SIGINT)."""

    def __init__(self, state_dir: Path, **env: str) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALHUB_")}
        self.env |= {
            "SIGNALHUB_STATE_DIR": str(state_dir),
            "SIGNALHUB_HTTP_PORT": str(self.port),
            "SIGNALHUB_INGEST_TOKEN_GEMEENTE": TOKEN,
            "SIGNALHUB_HOME": str(SETTINGS.home),
        }
        self.env |= env
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    # -- the process ------------------------------------------------------------------------

    def start(self) -> RunningHub:
        self.lines = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "signalhub", "up"],
            env=self.env,
            cwd=self.state_dir.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Wait for ``/readyz`` 200; fails with the output and the last answer otherwise."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"up exited with {self.process.returncode}:\n{self.output}")
            status, body = self.readyz()
            if status == 200:
                return body
            last = body
            time.sleep(0.3)
        raise AssertionError(f"not ready in {timeout_s} s: {last}\n{self.output}")

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """``/readyz``: (status, body); (0, {}) when nothing answers."""
        try:
            response = httpx.get(f"{self.base}/readyz", timeout=10.0)
            return response.status_code, response.json()
        except (httpx.HTTPError, ValueError):
            return 0, {}

    def hub_state(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads((self.state_dir / "hub.json").read_text("utf-8"))
        return body

    def role(self, name: str) -> dict[str, Any]:
        role: dict[str, Any] = next(r for r in self.hub_state()["roles"] if r["name"] == name)
        return role

    def kill_role(self, name: str) -> int:
        """SIGKILL the role's process, like a crash; returns the pid killed."""
        pid = int(self.role(name)["pid"])
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C, as a user stops it; returns the exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired as exc:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"up did not stop within {timeout_s} s:\n{self.output}"
                ) from exc
        return process.returncode

    def kill(self) -> None:
        """SIGKILL ``up`` itself; its children die with it (parent-death signal)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RunningHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()

    # -- what users do with it --------------------------------------------------------------

    def ingest(self, records: list[dict[str, Any]]) -> httpx.Response:
        return httpx.post(
            f"{self.base}/ingest/gemeente",
            json=records,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30.0,
        )

    def cli(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``signalhub ARGS`` in this hub's environment."""
        return subprocess.run(
            [sys.executable, "-m", "signalhub", *args],
            env=self.env,
            cwd=self.state_dir.parent,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    @property
    def settings(self) -> Settings:
        """The settings this hub's roles load (its state directory: keys, vault, stores)."""
        return load_settings(state_dir=self.state_dir)

    def deliveries(
        self, bootstrap: str | None = None, signal_ids: Iterable[str] = ()
    ) -> list[Delivery]:
        """Every record on every subscriber's ``deliveries.*`` topic of this hub, decoded.

        ``bootstrap``: the hub's external Kafka; default: its embedded broker. A delivery whose
        signal is one of ``signal_ids`` gets that hub id as its ``signal_id``.
        """
        settings = self.settings
        bootstrap = bootstrap or advertised_broker(settings)
        assert bootstrap is not None, "the hub's broker does not answer"
        consumer = open_consumer(bootstrap, client_id="signalhub-tests")
        try:
            topics = sorted(t for t in consumer.topics() if subscriber_of(t) is not None)
        finally:
            consumer.close()
        registry = SchemaRegistry.from_dir(settings.schemas_dir)
        hub_ids = HubSignalIds()
        candidates = list(signal_ids)
        found = []
        with ViewSchemaCatalog(bootstrap, registry) as catalog:
            for m in read_topics(bootstrap, topics):
                decoded = decode_delivery(catalog, m)
                subscriber = subscriber_of(m.topic) or ""
                hub_id = hub_ids.resolve(decoded, subscriber, candidates)
                found.append(Delivery(subscriber, m.key, bytes(m.value), decoded, hub_id))
        return found

    def audited_signal_ids(self) -> set[str]:
        """Signal ids with at least one decision in the SQLite audit store."""
        path = self.state_dir / "audit.sqlite"
        if not path.exists():
            return set()
        with sqlite3.connect(path) as connection:
            rows = connection.execute("SELECT DISTINCT signal_id FROM audit_log").fetchall()
        return {str(signal_id) for (signal_id,) in rows}

    def wait_reconciled(self, timeout_s: float = 180.0) -> str:
        """Run ``audit reconcile`` until it exits 0; returns its output."""
        deadline = time.monotonic() + timeout_s
        result = None
        while time.monotonic() < deadline:
            result = self.cli("audit", "reconcile")
            if result.returncode == 0:
                return result.stdout
            time.sleep(2.0)
        assert result is not None
        raise AssertionError(f"reconcile never passed:\n{result.stdout}\n{result.stderr}")


class Feeder:
    """Posts batches to ingest in a thread; keeps the signal ids the hub accepted (200)."""

    def __init__(self, hub: RunningHub, prefix: str, batch: int = 5, pause_s: float = 0.2) -> None:
        self._hub = hub
        self._prefix = prefix
        self._batch = batch
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.accepted: set[str] = set()
        self.refused: list[int] = []
        #: (time, status, signal ids) of every batch, to tell when a lost one was taken
        self.log: list[tuple[float, int, list[str]]] = []

    def _run(self) -> None:
        sent = 0
        while not self._stop.is_set():
            records = gemeente_records(f"{self._prefix}{sent}", self._batch)
            sent += 1
            try:
                response = self._hub.ingest(records)
            except httpx.HTTPError:
                self.refused.append(0)
            else:
                if response.status_code == 200:
                    ids = [p["signal_id"] for p in response.json()["published"]]
                    self.accepted |= set(ids)
                    self.log.append((time.time(), 200, ids))
                else:
                    self.refused.append(response.status_code)
            self._stop.wait(self._pause_s)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(60)
