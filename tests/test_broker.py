"""The embedded broker: start, stop, topics, supervision, and no orphaned broker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from process_support import alive, wait_until
from signalhub.broker.admin import create_topics
from signalhub.broker.connect import advertise, connect
from signalhub.broker.embedded import EmbeddedBroker, free_port
from signalhub.config import load_settings
from signalhub.errors import BrokerError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _topics(bootstrap_servers: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _partitions(bootstrap_servers: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        (described,) = admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        admin.close()


def _fake_tansu(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-tansu"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_broker_serves_kafka_on_loopback_and_stop_leaves_nothing_behind() -> None:
    with EmbeddedBroker() as broker:
        host, port = broker.bootstrap_servers.split(":")
        pid = broker.pid
        assert host == "127.0.0.1"
        assert pid is not None
        assert os.getpgid(pid) == pid, "the broker must lead its own process group"
        assert _topics(broker.bootstrap_servers) == set()
    assert not alive(pid)
    assert not _accepts(int(port))
    assert broker.pid is None


def test_create_topics_is_idempotent_and_keeps_the_first_partition_count(
    broker: EmbeddedBroker, name_factory: Callable[[str], str]
) -> None:
    name = name_factory("idem")
    broker.create_topics([name], partitions=3)
    broker.create_topics([name, name], partitions=1)
    assert name in _topics(broker.bootstrap_servers)
    assert _partitions(broker.bootstrap_servers, name) == 3


def test_topic_factory_creates_distinct_empty_topics(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    first, second = topic_factory("tf", partitions=2), topic_factory("tf")
    assert first != second
    assert {first, second} <= _topics(broker.bootstrap_servers)
    assert _partitions(broker.bootstrap_servers, first) == 2


def test_create_topics_on_an_unreachable_kafka_raises_broker_error() -> None:
    with pytest.raises(BrokerError, match="cannot reach Kafka"):
        create_topics(f"127.0.0.1:{free_port()}", ["nowhere"], timeout_s=1)


def test_a_broker_that_exits_at_start_reports_its_output(tmp_path: Path) -> None:
    binary = _fake_tansu(tmp_path, "echo 'fake tansu: address in use' >&2; exit 3")
    with pytest.raises(BrokerError, match=r"(?s)code 3.*fake tansu: address in use"):
        EmbeddedBroker(binary=binary).start()


def test_calf_tansu_bin_overrides_the_bundled_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", _fake_tansu(tmp_path, "echo overridden >&2; exit 4"))
    with pytest.raises(BrokerError, match="overridden"):
        EmbeddedBroker().start()


def test_a_broker_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    binary = _fake_tansu(tmp_path, f"echo $$ > {pid_file}; echo 'stuck' >&2; exec sleep 60")
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"(?s)did not answer.*stuck"):
        EmbeddedBroker(binary=binary, start_timeout_s=1).start()
    assert time.monotonic() - started < 10
    assert not alive(int(pid_file.read_text()))


def _run_owner(code: str) -> subprocess.Popen[str]:
    """A separate Python process that starts a broker and prints its pid, then runs ``code``."""
    program = textwrap.dedent(
        f"""
        import logging, sys, time
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        from signalhub.broker.embedded import EmbeddedBroker
        broker = EmbeddedBroker().start()
        print(broker.pid, flush=True)
        {code}
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def test_the_broker_dies_with_its_parent_even_on_sigkill() -> None:
    owner = _run_owner("time.sleep(120)")
    try:
        assert owner.stdout is not None
        broker_pid = int(owner.stdout.readline())
        assert alive(broker_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        assert wait_until(lambda: not alive(broker_pid), 10), "orphaned broker survived"
    finally:
        owner.kill()
        owner.communicate(timeout=10)


def test_an_exiting_process_stops_its_broker_through_the_atexit_hook() -> None:
    owner = _run_owner("sys.exit(0)  # no stop(): the atexit hook must do it")
    out, err = owner.communicate(timeout=30)
    broker_pid = int(out.split()[0])
    assert owner.returncode == 0
    assert "stopped" in err, err
    assert wait_until(lambda: not alive(broker_pid), 5)


def test_the_watchdog_restarts_a_dead_broker_on_the_same_port_and_notifies() -> None:
    restarted = threading.Event()
    seen: list[str] = []

    def on_restart(broker: EmbeddedBroker) -> None:
        seen.append(broker.bootstrap_servers)
        restarted.set()

    with EmbeddedBroker() as broker:
        broker.on_restart(on_restart)
        broker.create_topics(["before-crash"])
        first_pid = broker.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        assert restarted.wait(15), "the watchdog did not restart the broker"
        assert seen == [broker.bootstrap_servers]
        assert broker.restarts == 1
        assert broker.pid not in (None, first_pid)
        assert _topics(broker.bootstrap_servers) == set(), "a restarted tansu starts empty"


def test_without_supervision_a_dead_broker_stays_dead() -> None:
    with EmbeddedBroker(supervise=False) as broker:
        pid = broker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not broker.running, 5)
        time.sleep(0.5)
        assert not broker.running
        assert broker.restarts == 0


def test_restart_keeps_the_port_and_calls_back() -> None:
    calls: list[int] = []
    with EmbeddedBroker() as broker:
        broker.on_restart(lambda b: calls.append(b.port))
        port = broker.port
        broker.restart()
        assert broker.port == port
        assert calls == [port]
        assert _topics(broker.bootstrap_servers) == set()


def test_connect_passes_an_external_kafka_through_unchanged() -> None:
    settings = load_settings(bootstrap_servers="kafka-1:9093,kafka-2:9093")
    with connect(settings) as bootstrap_servers:
        assert bootstrap_servers == "kafka-1:9093,kafka-2:9093"


def test_connect_without_bootstrap_servers_runs_an_embedded_broker_for_the_block() -> None:
    with connect(load_settings(bootstrap_servers="")) as bootstrap_servers:
        host, port = bootstrap_servers.split(":")
        assert host == "127.0.0.1"
        assert _topics(bootstrap_servers) == set()
    assert not _accepts(int(port))


def test_connect_joins_the_broker_a_running_hub_advertises(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    settings = load_settings(bootstrap_servers="", state_dir=tmp_path)
    with advertise(settings, broker.bootstrap_servers):
        with connect(settings) as joined:
            assert joined == broker.bootstrap_servers
        with connect(settings, own=True) as own:
            assert own != broker.bootstrap_servers
    assert not (tmp_path / "broker.address").exists()
    with connect(settings) as fresh:
        assert fresh != broker.bootstrap_servers


def test_a_stale_advertisement_is_ignored(tmp_path: Path) -> None:
    settings = load_settings(bootstrap_servers="", state_dir=tmp_path)
    (tmp_path / "broker.address").write_text(f"127.0.0.1:{free_port()}\n")
    with connect(settings) as bootstrap_servers:
        assert _topics(bootstrap_servers) == set()
