"""The durable embedded broker: tansu on a local object store keeps its data across kills.

Every test runs the real tansu and s3rver processes and kills them the way a crash would
(SIGKILL). What must survive is what a hub needs to resume where it stopped: the records, the
topics with their partition counts, and each consumer group's committed offsets.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from process_support import alive, wait_until
from signalhub.broker.clients import KafkaConnection, new_admin, new_consumer, new_producer
from signalhub.broker.embedded import EmbeddedBroker, port_open
from signalhub.errors import BrokerError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = {"orders": 2, "audit": 3}
GROUP = "billing"
COMMITTED = {0: 3, 1: 2}  # the group's committed offset per partition of "orders"


@dataclass(frozen=True)
class BrokerState:
    """What a hub needs back after a crash, read through fresh clients."""

    partitions: dict[str, int]
    records: dict[str, list[bytes]]
    committed: dict[int, int | None]


EXPECTED = BrokerState(
    partitions=PARTITIONS,
    records={
        "orders": sorted(f"order-{i}".encode() for i in range(10)),
        "audit": sorted(f"audit-{i}".encode() for i in range(6)),
    },
    committed=dict(COMMITTED),
)


def _connection(broker: EmbeddedBroker) -> KafkaConnection:
    return KafkaConnection(broker.bootstrap_servers)


def _write_state(broker: EmbeddedBroker) -> None:
    """Create the topics, produce every record (acknowledged by all), commit the offsets."""
    for topic, partitions in PARTITIONS.items():
        broker.create_topics([topic], partitions=partitions)
    producer = new_producer(_connection(broker), acks="all", request_timeout_ms=10_000)
    try:
        for topic, records in EXPECTED.records.items():
            for index, value in enumerate(records):
                producer.send(topic, value, partition=index % PARTITIONS[topic]).get(10)
    finally:
        producer.close()
    consumer = new_consumer(_connection(broker), group_id=GROUP, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition("orders", p) for p in COMMITTED])
        consumer.commit(
            {
                TopicPartition("orders", p): OffsetAndMetadata(offset, "", -1)
                for p, offset in COMMITTED.items()
            }
        )
    finally:
        consumer.close()


def _topics(broker: EmbeddedBroker) -> dict[str, int]:
    admin = new_admin(_connection(broker), request_timeout_ms=10_000)
    try:
        names = admin.list_topics()
        described = admin.describe_topics(names) if names else []
        return {topic["name"]: len(topic["partitions"]) for topic in described}
    finally:
        admin.close()


def _records(broker: EmbeddedBroker, topic: str, partitions: int, expected: int) -> list[bytes]:
    consumer = new_consumer(_connection(broker), enable_auto_commit=False)
    values: list[bytes] = []
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + 15
        while len(values) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                values.extend(record.value for record in batch)
        for batch in consumer.poll(timeout_ms=300).values():  # nothing more may be hiding
            values.extend(record.value for record in batch)
    finally:
        consumer.close()
    return sorted(values)


def _read_state(broker: EmbeddedBroker) -> BrokerState:
    partitions = _topics(broker)
    records = {
        topic: _records(broker, topic, count, len(EXPECTED.records.get(topic, [])))
        for topic, count in partitions.items()
    }
    consumer = new_consumer(_connection(broker), group_id=GROUP, enable_auto_commit=False)
    try:
        committed = {p: consumer.committed(TopicPartition("orders", p)) for p in COMMITTED}
    finally:
        consumer.close()
    return BrokerState(partitions, records, committed)


def _cluster_id(broker: EmbeddedBroker) -> str:
    admin = new_admin(_connection(broker), request_timeout_ms=10_000)
    try:
        cluster_id: str = admin.describe_cluster()["cluster_id"]
        return cluster_id
    finally:
        admin.close()


def _pids(broker: EmbeddedBroker) -> tuple[int, int]:
    """(tansu's pid, the object store's pid) of a running durable broker."""
    assert broker.store is not None
    tansu, store = broker.pid, broker.store.pid
    assert tansu is not None
    assert store is not None
    return tansu, store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "broker"


@pytest.fixture
def durable(data_dir: Path) -> Iterator[EmbeddedBroker]:
    """A supervised durable broker over ``data_dir``, already holding the expected state."""
    with EmbeddedBroker(data_dir=data_dir) as broker:
        _write_state(broker)
        yield broker


def test_a_durable_broker_keeps_its_data_in_a_private_directory(
    durable: EmbeddedBroker, data_dir: Path
) -> None:
    assert durable.durable
    assert durable.running
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert (data_dir / "tansu").is_dir(), "the bucket lives in the data directory"
    assert _read_state(durable) == EXPECTED


@pytest.mark.parametrize("victim", ["tansu", "object store"])
def test_data_survives_kill_9_and_the_watchdog_restart_on_the_same_ports(
    durable: EmbeddedBroker, victim: str
) -> None:
    assert durable.store is not None
    restarted = threading.Event()
    durable.on_restart(lambda _: restarted.set())
    ports = (durable.port, durable.store.port)
    tansu, store = _pids(durable)
    os.kill(tansu if victim == "tansu" else store, signal.SIGKILL)
    assert restarted.wait(20), f"the watchdog did not restart after the {victim} died"
    assert durable.running
    assert durable.restarts == 1
    assert (durable.port, durable.store.port) == ports
    new_tansu, new_store = _pids(durable)
    assert new_tansu != tansu, "tansu always restarts (it needs a fresh store connection)"
    assert (new_store != store) == (victim == "object store")
    assert _read_state(durable) == EXPECTED


def test_data_survives_a_machine_restart_with_new_processes_and_ports(data_dir: Path) -> None:
    first = EmbeddedBroker(data_dir=data_dir, supervise=False).start()
    try:
        _write_state(first)
        for pid in _pids(first):
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not first.running, 5)
        time.sleep(0.5)  # without supervision nothing comes back
        assert first.pid is None
        assert first.store is not None
        assert first.store.pid is None
        assert first.restarts == 0
    finally:
        first.stop()
    with EmbeddedBroker(data_dir=data_dir) as second:
        assert second is not first
        assert _read_state(second) == EXPECTED


def test_without_supervision_a_dead_store_leaves_the_broker_not_running(
    data_dir: Path,
) -> None:
    with EmbeddedBroker(data_dir=data_dir, supervise=False) as broker:
        tansu, store = _pids(broker)
        os.kill(store, signal.SIGKILL)
        assert wait_until(lambda: not broker.running, 5)
        time.sleep(0.5)
        assert not broker.running
        assert broker.pid == tansu, "tansu alone is not a running broker"
        assert broker.restarts == 0
    assert not alive(tansu)


def test_stop_ends_tansu_and_the_store_and_frees_both_ports(data_dir: Path) -> None:
    with EmbeddedBroker(data_dir=data_dir) as broker:
        assert broker.store is not None
        tansu, store = _pids(broker)
        ports = (broker.port, broker.store.port)
        assert os.getpgid(store) == store, "the store must lead its own process group"
    assert not alive(tansu)
    assert not alive(store)
    assert not any(port_open("127.0.0.1", port) for port in ports)
    assert not broker.running


def test_a_second_broker_on_the_same_data_directory_is_refused(
    durable: EmbeddedBroker, data_dir: Path
) -> None:
    with pytest.raises(BrokerError, match="in use by another process"):
        EmbeddedBroker(data_dir=data_dir).start()
    assert durable.running
    assert _read_state(durable) == EXPECTED


def test_a_missing_s3rver_names_the_command_that_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALHUB_S3RVER_BIN", str(tmp_path / "no-such-s3rver"))
    broker = EmbeddedBroker(data_dir=tmp_path / "broker")
    with pytest.raises(BrokerError, match=r"npm ci --prefix \S+/deploy/s3rver.*make install"):
        broker.start()
    assert not broker.running
    assert broker.pid is None, "tansu must not start without its store"


def test_the_store_dies_with_its_owner_even_on_sigkill(tmp_path: Path) -> None:
    program = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from signalhub.broker.embedded import EmbeddedBroker
        broker = EmbeddedBroker(data_dir=Path({str(tmp_path / "broker")!r})).start()
        print(broker.pid, broker.store.pid, flush=True)
        time.sleep(120)
        """
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert owner.stdout is not None
        pids = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(pids) == 2
        assert all(alive(pid) for pid in pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        assert wait_until(lambda: not any(alive(pid) for pid in pids), 10), "orphans survived"
    finally:
        owner.kill()
        owner.communicate(timeout=10)


# -- the defects this mode exists for, shown against the real broker --------------------------


@pytest.mark.parametrize("storage", ["memory", "durable"])
def test_only_durable_storage_keeps_topics_across_a_restart(tmp_path: Path, storage: str) -> None:
    """Defect of memory storage: every topic, record and offset is gone after a restart."""
    data_dir = tmp_path / "broker" if storage == "durable" else None
    with EmbeddedBroker(data_dir=data_dir) as broker:
        _write_state(broker)
        broker.restart()
        if storage == "memory":
            assert _topics(broker) == {}
        else:
            assert _read_state(broker) == EXPECTED


def test_the_cluster_id_cannot_tell_a_fresh_broker_from_an_old_one(
    durable: EmbeddedBroker, tmp_path: Path
) -> None:
    """Defect: tansu's cluster id is the constant ``tansu_cluster``, whatever its data.

    So "is this the broker I wrote to, or an empty one?" must be answered from the data itself
    (the hub's topics, a marker record), never from the cluster id.
    """
    with EmbeddedBroker(data_dir=tmp_path / "fresh") as fresh, EmbeddedBroker() as memory:
        ids = {_cluster_id(durable), _cluster_id(fresh), _cluster_id(memory)}
        assert ids == {"tansu_cluster"}
        assert _topics(fresh) == {}
        assert _topics(durable) == PARTITIONS


def test_fetching_a_partition_of_more_than_a_thousand_batches_stalls(data_dir: Path) -> None:
    """Defect: tansu 0.6.0's S3 engine lists *every* batch object of a partition on each fetch.

    Fetch cost grows with the number of batches a partition ever received (no retention), and
    past ~1,000 batches (one S3 listing page; s3rver does not list in key order) a consumer
    reading from the start gets almost nothing. Measured here: the latest record reached a
    consumer in ~75 ms at 15 batches, ~250 ms at 600, never at 1,000. The same records in a
    few large batches are read back at once. Workaround to revisit: few, large batches
    (producer linger), or memory storage for high-volume topics.
    """
    batches = 1_100
    with EmbeddedBroker(data_dir=data_dir) as broker:
        broker.create_topics(["many-batches"])
        producer = new_producer(_connection(broker), acks=1, linger_ms=0)
        try:
            for index in range(batches):  # one request, hence one batch object, per record
                producer.send("many-batches", f"r{index}".encode(), partition=0).get(10)
        finally:
            producer.close()
        consumer = new_consumer(_connection(broker), enable_auto_commit=False)
        got = 0
        try:
            partition = TopicPartition("many-batches", 0)
            consumer.assign([partition])
            consumer.seek(partition, 0)
            deadline = time.monotonic() + 15
            while got < batches and time.monotonic() < deadline:
                got += sum(len(records) for records in consumer.poll(timeout_ms=500).values())
        finally:
            consumer.close()
    assert got < batches, "tansu now fetches long partitions: revisit the batch-count caveat"
