"""The audit-ingest role as it runs: in a thread of its own, through store and broker outages.

Real embedded broker (one per test: the role follows the fixed ``audit`` topic), real SQLite and
a real PostgreSQL cluster that this module starts itself on a port of its own, stops in the middle
of ingest and starts again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from audit_store_support import decision
from pg_cluster_support import PgCluster, new_pg_cluster, postgres_dsn
from signalhub.audit.backends import open_store
from signalhub.audit.health import (
    STORE_UNREACHABLE,
    audit_ingest_lag,
    audit_ingest_status,
    audit_store_writable,
)
from signalhub.audit.ingest import (
    HEARTBEAT_S,
    RETRY_MAX_S,
    IngestReport,
    audit_registry,
    run_audit_ingest,
)
from signalhub.audit.record import audit_entry, load_audit_schema
from signalhub.broker.clients import KafkaConnection, new_producer
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.broker.process import free_port
from signalhub.config import Settings, load_settings
from signalhub.errors import ConfigError, SignalhubError
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import Record
from signalhub.wire import AUDIT_TOPIC

pytestmark = pytest.mark.integration


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def audit_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, with the ``audit`` topic (one partition, as the hub makes)."""
    with EmbeddedBroker(supervise=False) as running:
        running.create_topics([AUDIT_TOPIC], partitions=1)
        yield running


def settings_for(tmp_path: Path, bootstrap: str, dsn: str = "") -> Settings:
    return load_settings(
        state_dir=tmp_path / "state",
        bootstrap_servers=bootstrap,
        audit_dsn=dsn,
        audit_group=f"audit-{uuid.uuid4().hex[:8]}",
    )


def publish(bootstrap: str, first: int, last: int) -> list[str]:
    """Decisions ``first..last``, each as its signal's audit entry; returns their decision ids."""
    registry, schema = _audit_codec()
    records: list[Record] = [decision(n) for n in range(first, last + 1)]
    producer = new_producer(KafkaConnection(bootstrap), acks="all")
    try:
        for record in records:
            value = codec.encode(registry, schema, audit_entry(record["signal_id"], [record]))
            producer.send(AUDIT_TOPIC, key=record["signal_id"].encode(), value=value)
        producer.flush()
    finally:
        producer.close()
    return [str(record["decision_id"]) for record in records]


@cache
def _audit_codec() -> tuple[SchemaRegistry, Any]:
    settings = load_settings()
    return audit_registry(settings), load_audit_schema(settings.schemas_dir)


def stored_ids(settings: Settings) -> list[str]:
    """Every stored decision id in sequence order (opened here, in the test's thread)."""
    with open_store(settings) as store:
        return [row.entry_id for row in store.select()]


def stored_count(settings: Settings) -> int:
    try:
        with open_store(settings) as store:
            return store.count()
    except SignalhubError:
        return -1


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``check`` until true; the seconds it took. Fails the test with ``what``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - start


@dataclass
class RunningIngest:
    stop: threading.Event
    thread: threading.Thread
    reports: list[IngestReport]
    errors: list[BaseException]


@contextmanager
def running_ingest(settings: Settings, bootstrap: str) -> Iterator[RunningIngest]:
    """``run_audit_ingest`` in a new thread (nothing built here); stopped and joined after."""
    stop = threading.Event()
    reports: list[IngestReport] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_audit_ingest(settings, bootstrap, stop=stop, on_batch=reports.append)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="audit-ingest-under-test", daemon=True)
    running = RunningIngest(stop, thread, reports, errors)
    thread.start()
    try:
        yield running
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the ingest role did not return after stop was set"
    assert errors == [], f"the ingest role raised: {errors!r}"


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    with new_pg_cluster() as cluster:
        yield cluster


class StateWatcher:
    """Records every state the status file shows, polled every 20 ms from a thread."""

    def __init__(self, settings: Settings) -> None:
        self.seen: list[tuple[float, str]] = []
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            status = audit_ingest_status(self._settings)
            if status is not None and (not self.seen or self.seen[-1][1] != status["state"]):
                self.seen.append((time.monotonic(), str(status["state"])))

    def __enter__(self) -> StateWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def states(self) -> list[str]:
        return [state for _, state in self.seen]

    def current(self) -> str | None:
        return self.seen[-1][1] if self.seen else None


# -- tests -------------------------------------------------------------------------------------


def test_ingest_in_a_thread_of_its_own_stores_every_decision_and_reports_it(
    tmp_path: Path, audit_broker: EmbeddedBroker
) -> None:
    bootstrap = audit_broker.bootstrap_servers
    settings = settings_for(tmp_path, bootstrap)
    produced = publish(bootstrap, 1, 30)
    assert audit_ingest_status(settings) is None
    assert audit_ingest_lag(settings, bootstrap) == 30

    with running_ingest(settings, bootstrap) as ingest:
        wait_until(lambda: stored_count(settings) == 30, 30, "30 decisions stored")
        wait_until(lambda: bool(ingest.reports), 5, "a batch reported")

    assert stored_ids(settings) == produced
    status = audit_ingest_status(settings)
    assert status is not None
    assert status["state"] == "ingesting"
    assert status["ingested_offset"] == {f"{AUDIT_TOPIC}[0]": 30}
    assert status["store_writable"] is True
    assert time.time() - float(status["updated_at"]) < 60
    assert not list((settings.state_dir).glob(".audit-ingest.*.tmp")), "a temp file was left"
    assert audit_ingest_lag(settings, bootstrap) == 0
    publish(bootstrap, 31, 35)
    assert audit_ingest_lag(settings, bootstrap) == 5
    writable, detail = audit_store_writable(settings)
    assert writable, detail


def test_a_new_run_resumes_after_the_committed_offsets_and_skips_a_batch_stored_twice(
    tmp_path: Path, audit_broker: EmbeddedBroker
) -> None:
    bootstrap = audit_broker.bootstrap_servers
    settings = settings_for(tmp_path, bootstrap)
    produced = publish(bootstrap, 1, 20)
    with running_ingest(settings, bootstrap):
        wait_until(lambda: stored_count(settings) == 20, 30, "first run stored 20")

    produced += publish(bootstrap, 21, 30)
    # A batch appended whose offsets were never committed (the role died in between, or the
    # broker went away at the commit): the store holds 21..25 before the next run reads them.
    with open_store(settings) as store:
        store.append([decision(n) for n in range(21, 26)])

    with running_ingest(settings, bootstrap) as second:
        wait_until(lambda: bool(second.reports) and second.reports[-1].read == 10, 30, "10 read")

    last = second.reports[-1]
    assert (last.read, last.inserted, last.duplicates) == (10, 5, 5)
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)) == 30
    assert set(ids) == set(produced)
    with open_store(settings) as store:
        report = store.verify()
        assert report.intact, report.findings
        assert store.head()[0] == 30  # no sequence number spent on a duplicate


def test_a_postgres_restart_during_ingest_loses_and_doubles_nothing(
    tmp_path: Path,
    audit_broker: EmbeddedBroker,
    pg_cluster: PgCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = audit_broker.bootstrap_servers
    settings = settings_for(tmp_path, bootstrap, postgres_dsn(pg_cluster))
    produced: list[str] = []
    producing = threading.Event()
    producing.set()

    def produce() -> None:
        """Keep the enforcer's side going: 5 decisions every 100 ms, whatever the store does."""
        n = 1
        while producing.is_set():
            produced.extend(publish(bootstrap, n, n + 4))
            n += 5
            time.sleep(0.1)

    caplog.set_level(logging.INFO, logger="signalhub.audit.ingest")
    producer = threading.Thread(target=produce, daemon=True)
    timings: dict[str, float] = {}
    with StateWatcher(settings) as watcher, running_ingest(settings, bootstrap):
        producer.start()
        wait_until(lambda: stored_count(settings) >= 50, 30, "ingest under way")

        pg_cluster.stop()
        stopped = time.monotonic()
        timings["noticed"] = wait_until(
            lambda: watcher.current() == STORE_UNREACHABLE, 20, "status says store_unreachable"
        )
        writable, detail = audit_store_writable(settings)
        assert not writable
        assert "takes no write" in detail
        status = audit_ingest_status(settings)
        assert status is not None
        assert status["store_writable"] is False
        time.sleep(3)  # records keep arriving while the store is down

        pg_cluster.start()
        timings["down"] = time.monotonic() - stopped
        timings["recovered"] = wait_until(
            lambda: watcher.current() == "ingesting", RETRY_MAX_S + 10, "ingesting again"
        )
        writable, detail = audit_store_writable(settings)
        assert writable, detail
        time.sleep(1)
        producing.clear()
        producer.join(timeout=10)
        timings["caught_up"] = wait_until(
            lambda: stored_count(settings) == len(produced), 30, "every decision stored"
        )

    print(f"\npostgres outage: {timings} (s); states {watcher.states()}")
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)) == len(produced)
    assert set(ids) == set(produced)
    with open_store(settings) as store:
        report = store.verify()
        assert report.intact, report.findings
        assert store.head()[0] == len(produced)
    assert STORE_UNREACHABLE in watcher.states()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    outage = [m for m in warnings if m.startswith("audit store unreachable: ")]
    assert len(outage) == 1, warnings  # one line per outage, not one per attempt
    assert "retrying in 0.5 s" in outage[0]
    assert audit_ingest_lag(settings, bootstrap) == 0


def test_a_store_lost_while_no_records_arrive_is_still_reported(
    tmp_path: Path, audit_broker: EmbeddedBroker, pg_cluster: PgCluster
) -> None:
    bootstrap = audit_broker.bootstrap_servers
    settings = settings_for(tmp_path, bootstrap, postgres_dsn(pg_cluster))
    produced = publish(bootstrap, 1, 3)
    with StateWatcher(settings) as watcher, running_ingest(settings, bootstrap):
        wait_until(lambda: stored_count(settings) == 3, 30, "3 stored")
        pg_cluster.stop()
        try:
            noticed = wait_until(
                lambda: watcher.current() == STORE_UNREACHABLE,
                HEARTBEAT_S + 5,
                "store_unreachable without any record arriving",
            )
        finally:
            pg_cluster.start()
        wait_until(lambda: watcher.current() == "ingesting", RETRY_MAX_S + 10, "ingesting again")
    print(f"\nidle postgres outage noticed after {noticed:.1f} s")
    assert stored_ids(settings) == produced


def test_an_unreachable_broker_is_reported_and_ingest_starts_when_it_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    settings = settings_for(tmp_path, bootstrap)
    caplog.set_level(logging.INFO, logger="signalhub.audit.ingest")
    assert audit_ingest_lag(settings, bootstrap) is None
    with StateWatcher(settings) as watcher, running_ingest(settings, bootstrap):
        wait_until(lambda: watcher.current() == "broker_unreachable", 30, "broker_unreachable")
        with EmbeddedBroker(port=port, supervise=False) as broker:
            started = time.monotonic()
            broker.create_topics([AUDIT_TOPIC], partitions=1)
            produced = publish(bootstrap, 1, 10)
            wait_until(lambda: stored_count(settings) == 10, RETRY_MAX_S + 30, "10 stored")
            recovered = time.monotonic() - started
            # Counted while the broker is still up: once it stops, ingest (still running until
            # the outer block ends) may rightly report the loss a second time.
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    print(f"\nbroker came up: stored after {recovered:.1f} s; states {watcher.states()}")
    assert stored_ids(settings) == produced
    assert len([m for m in warnings if m.startswith("Kafka unreachable: ")]) == 1, warnings


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://postgres@127.0.0.1:5432/x?connect_timeout=x y", "mysql://somewhere/audit"],
    ids=["unparsable-dsn", "unknown-scheme"],
)
def test_a_setting_that_can_never_work_ends_the_role(tmp_path: Path, dsn: str) -> None:
    settings = settings_for(tmp_path, "127.0.0.1:1", dsn)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="SIGNALHUB_AUDIT_DSN"):
        run_audit_ingest(settings, settings.bootstrap_servers, stop=threading.Event())
    assert time.monotonic() - started < 5
