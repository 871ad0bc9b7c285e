"""What the dashboard needs over time: throughput history and consumer lag, sampled in a thread.

Lag is computed from what is actually fetched, never from end offsets (tansu under-reports
them): a reader in the console follows every signal topic partition and remembers the highest
offset it has seen (it drops the values unread), and the enforcer reports the next offset it will
process (:mod:`signalhub.enforcer.metrics`). Lag = seen end - enforcer position, per partition.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from signalhub.broker.reader import open_consumer
from signalhub.enforcer.metrics import MetricsSnapshot, parse_metrics

__all__ = ["Sample", "Sampler", "TopicEnds"]

logger = logging.getLogger(__name__)

#: Records read per lag update at most, so a busy topic cannot hold the sampler forever.
_MAX_READ = 50_000


@dataclass(frozen=True)
class Sample:
    """Cumulative enforcer counters at one moment (the chart plots their differences)."""

    at: float
    signals: float
    deliveries: float
    dead_letters: float


class TopicEnds:
    """Follows topic partitions from their start and remembers the last offset seen (+1)."""

    def __init__(self, bootstrap_servers: str, topics: list[str]) -> None:
        self._consumer = open_consumer(
            bootstrap_servers,
            client_id="signalhub-console-lag",
            max_partition_fetch_bytes=256 * 1024,
        )
        self._topics = topics
        self._assigned: list[TopicPartition] = []
        self.ends: dict[tuple[str, int], int] = {}
        self.reachable_at = 0.0

    def _assign(self) -> None:
        assigned = []
        for topic in self._topics:
            partitions = self._consumer.partitions_for_topic(topic) or set()
            assigned += [TopicPartition(topic, p) for p in sorted(partitions)]
        if assigned != self._assigned:
            self._consumer.assign(assigned)
            for tp in assigned:
                if (tp.topic, tp.partition) in self.ends:
                    self._consumer.seek(tp, self.ends[(tp.topic, tp.partition)])
                else:
                    self._consumer.seek_to_beginning(tp)
            self._assigned = assigned

    def update(self, *, poll_ms: int = 100) -> None:
        """Read what arrived since the last update (bounded), remembering each partition's end."""
        self._assign()
        self.reachable_at = time.time()
        if not self._assigned:
            return
        read = 0
        while read < _MAX_READ:
            batch = self._consumer.poll(timeout_ms=poll_ms, max_records=5000)
            if not batch:
                return
            for tp, records in batch.items():
                read += len(records)
                last = records[-1].offset + 1
                key = (tp.topic, tp.partition)
                self.ends[key] = max(self.ends.get(key, 0), last)

    def close(self) -> None:
        self._consumer.close()


@dataclass
class Sampler:
    """Samples the enforcer's counters and the signal topics' ends every ``interval_s``."""

    scrape: Callable[[], str | None]
    ends_factory: Callable[[], TopicEnds] | None
    interval_s: float
    history_s: float
    samples: deque[Sample] = field(default_factory=deque)
    latest: MetricsSnapshot | None = None
    ends: TopicEnds | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="console-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.ends is not None:
            self.ends.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # the edge of a background thread: log, keep sampling
                logger.exception("console sampler: sample failed")
            self._stop.wait(self.interval_s)

    def sample_once(self) -> None:
        text = self.scrape()
        snapshot = parse_metrics(text) if text else None
        if self.ends is None and self.ends_factory is not None:
            self.ends = self.ends_factory()
        if self.ends is not None:
            self.ends.update()
        now = time.time()
        with self._lock:
            self.latest = snapshot
            if snapshot is not None:
                self.samples.append(
                    Sample(
                        now,
                        snapshot.total("signalhub_signals_total"),
                        snapshot.total("signalhub_deliveries_total"),
                        snapshot.total("signalhub_dead_letters_total"),
                    )
                )
            while self.samples and self.samples[0].at < now - self.history_s:
                self.samples.popleft()

    def throughput(self) -> list[dict[str, Any]]:
        """Per interval: signals, deliveries and dead letters per second (counter resets = 0)."""
        with self._lock:
            samples = list(self.samples)
        points = []
        for before, after in itertools.pairwise(samples):
            span = max(after.at - before.at, 1e-6)
            points.append(
                {
                    "at": after.at,
                    "signals": max(0.0, after.signals - before.signals) / span,
                    "deliveries": max(0.0, after.deliveries - before.deliveries) / span,
                    "dead_letters": max(0.0, after.dead_letters - before.dead_letters) / span,
                }
            )
        return points

    def topic_ends(self) -> dict[tuple[str, int], int]:
        return dict(self.ends.ends) if self.ends is not None else {}
