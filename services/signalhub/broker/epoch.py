"""Did the broker come back with our data? The hub's epoch marker answers it.

tansu reports the same cluster id (``tansu_cluster``) for every broker it starts, so the cluster
id cannot tell a restarted broker that kept its data from an empty one. The hub therefore writes
one record, a random epoch id, to its own topic the first time it meets a broker, and remembers
the id in the state directory. A broker that later lacks the record (memory storage restarted,
a wiped store, another cluster behind the same address) has lost what it held.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from signalhub.broker.admin import create_topics
from signalhub.broker.clients import KafkaConnection, new_producer
from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.wire import EPOCH_TOPIC

__all__ = ["EPOCH_FILE", "EpochCheck", "check_epoch", "read_epoch"]

#: File in the state directory with the epoch of the broker the hub last wrote to.
EPOCH_FILE = "broker.epoch"

Verdict = Literal["same", "new", "adopted", "lost"]


@dataclass(frozen=True)
class EpochCheck:
    """What the broker holds compared with what the state directory remembers.

    ``lost`` means the broker came back without the epoch this hub wrote: everything it held
    before (signals not yet enforced, deliveries not yet read, audit records not yet ingested)
    may be gone.
    """

    verdict: Verdict
    epoch: str
    previous: str | None

    @property
    def lost(self) -> bool:
        return self.verdict == "lost"


def read_epoch(bootstrap_servers: str) -> str | None:
    """The epoch id on the broker, or None when the topic is missing or empty."""
    consumer = open_consumer(bootstrap_servers, client_id="signalhub-epoch")
    try:
        if not assign_topic(consumer, EPOCH_TOPIC):
            return None
        last: str | None = None
        for message in drain(consumer, idle_ms=300, first_wait_ms=1500):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                last = str(json.loads(bytes(message.value or b"{}"))["epoch"])
        return last
    finally:
        consumer.close()


def check_epoch(bootstrap_servers: str, state_dir: Path) -> EpochCheck:
    """Compare the broker's epoch with the remembered one; write a new epoch where none is."""
    path = state_dir / EPOCH_FILE
    previous = path.read_text("utf-8").strip() if path.is_file() else None
    found = read_epoch(bootstrap_servers)
    if found is not None and found == previous:
        return EpochCheck("same", found, previous)
    if found is not None:  # a broker with data, new to this state directory: take it as ours
        _remember(path, found)
        return EpochCheck("adopted" if previous is None else "lost", found, previous)
    epoch = _write_epoch(bootstrap_servers)
    _remember(path, epoch)
    return EpochCheck("new" if previous is None else "lost", epoch, previous)


def _write_epoch(bootstrap_servers: str) -> str:
    epoch = uuid.uuid4().hex
    create_topics(bootstrap_servers, [EPOCH_TOPIC], partitions=1)
    producer = new_producer(
        KafkaConnection(bootstrap_servers), acks="all", client_id="signalhub-epoch"
    )
    try:
        body = {"epoch": epoch, "created_at": time.time()}
        producer.send(EPOCH_TOPIC, json.dumps(body).encode("utf-8")).get(timeout=10)
    finally:
        producer.close()
    return epoch


def _remember(path: Path, epoch: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(epoch + "\n", encoding="utf-8")
    temporary.replace(path)
