"""What every benchmark shares: sizes per mode, result rows, loading and counting records.

Counting is done by consuming the outputs (tansu under-reports end offsets, DESIGN.md), and a
rate is taken over the window between the first and the last output record's timestamp (the
producer's CreateTime, set when the worker handed the record over): the time a worker spends
starting and joining its group is not part of the rate, and the counting consumer's own speed
is not either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from signalhub.apps.demo import prepare_settings
from signalhub.config import Settings, load_settings

__all__ = [
    "Mode",
    "OutputCount",
    "Row",
    "bench_settings",
    "count_outputs",
    "percentile",
    "produce",
    "scratch_dir",
    "vm_hwm_mb",
]

#: Largest fetch a counting consumer asks for; tansu answers fetches whole.
_FETCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Mode:
    """How much work each benchmark does: ``full`` (< 10 min) or ``quick`` (< 1 min)."""

    name: str
    limit_records: int
    floor_records: int
    naive_signals: int
    hub_signals: int
    latency_seconds: float
    scaling_signals: int
    dryrun_signals: int

    @classmethod
    def of(cls, quick: bool) -> Mode:
        if quick:
            return cls("quick", 20_000, 2_000, 100, 2_000, 2.0, 1_500, 10_000)
        return cls("full", 100_000, 30_000, 1_000, 30_000, 20.0, 30_000, 100_000)


@dataclass
class Row:
    """One line of the results table (and one object in the JSON file)."""

    bench: str
    metric: str
    value: float | None
    unit: str
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A private temporary directory for one benchmark's state (key file, logs)."""
    with tempfile.TemporaryDirectory(prefix=f"signalhub-bench-{prefix}-") as path:
        yield Path(path)


def bench_settings(state_dir: Path, **overrides: Any) -> Settings:
    """The hub's settings with a throw-away state directory and development key."""
    return prepare_settings(load_settings(state_dir=state_dir, bootstrap_servers="", **overrides))


def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> dict[bytes, int]:
    """Publish (topic, key, value) records, batched; returns the send time (ms) per key."""
    return asyncio.run(_produce(bootstrap, records))


async def _produce(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]
) -> dict[bytes, int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    sent: dict[bytes, int] = {}
    try:
        pending = []
        for topic, key, value in records:
            stamp = int(time.time() * 1000)
            pending.append(await producer.send(topic, value, key=key, timestamp_ms=stamp))
            if key is not None:
                sent[key] = stamp
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


@dataclass
class OutputCount:
    """What a counting consumer saw: records per topic and the CreateTime window."""

    per_topic: Counter[str] = field(default_factory=Counter)
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def total(self) -> int:
        return sum(self.per_topic.values())

    @property
    def window_s(self) -> float:
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return max(self.last_ms - self.first_ms, 1) / 1000

    def add(self, topic: str, timestamp_ms: int) -> None:
        self.per_topic[topic] += 1
        if self.first_ms is None or timestamp_ms < self.first_ms:
            self.first_ms = timestamp_ms
        if self.last_ms is None or timestamp_ms > self.last_ms:
            self.last_ms = timestamp_ms


def count_outputs(
    bootstrap: str,
    partitions: Mapping[str, int],
    *,
    until: Mapping[str, int],
    idle_s: float,
    timeout_s: float,
    alive: Any = None,
) -> OutputCount:
    """Consume ``partitions`` (topic -> partition count) from the start until every topic in
    ``until`` reached its count and the topics then stayed quiet for ``idle_s`` (or timeout).

    ``alive`` (optional callable) is called between polls: it raises if a worker died.
    """
    return asyncio.run(_count(bootstrap, partitions, until, idle_s, timeout_s, alive))


async def _count(
    bootstrap: str,
    partitions: Mapping[str, int],
    until: Mapping[str, int],
    idle_s: float,
    timeout_s: float,
    alive: Any,
) -> OutputCount:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=200,
        max_partition_fetch_bytes=_FETCH_BYTES,
        fetch_max_bytes=_FETCH_BYTES,
    )
    await consumer.start()
    seen = OutputCount()
    try:
        assigned = [TopicPartition(t, p) for t, n in partitions.items() for p in range(n)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
            if batch:
                quiet_since = time.monotonic()
                for tp, records in batch.items():
                    for record in records:
                        seen.add(tp.topic, record.timestamp)
            else:
                if alive is not None:
                    alive()
                reached = all(seen.per_topic[t] >= n for t, n in until.items())
                if reached and time.monotonic() - quiet_since >= idle_s:
                    break
    finally:
        await consumer.stop()
    return seen


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by the inclusive method; NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size of a live process, from /proc/<pid>/status (VmHWM), in MB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def children_running(module_arg: str) -> list[int]:
    """Pids of our child processes whose command line contains ``module_arg``."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and module_arg in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def start_child(args: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> Any:
    """Run ``python <args>`` as a child that dies with us; output goes to ``log_path``."""
    import subprocess
    import sys

    from signalhub.broker.children import child_preexec

    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_preexec(os.getpid()),
        )
    finally:
        log.close()


def stop_child(process: Any, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if the child has not exited within ``grace_s``."""
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def check_child(process: Any, log_path: Path) -> None:
    """Raise with the log's tail when a child exited before its work was done."""
    if process.poll() is not None:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{tail}")
