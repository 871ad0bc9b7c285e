"""Killing the enforcer mid-stream and starting it again loses no signal (issue 2's acceptance).

The worker is SIGKILLed (no commit, no flush) while connectors are still publishing; a new worker
in the same consumer group takes over from the last committed offsets. Every published signal
must then be audited for every subscription of its type, and every delivery that arrives more
than once must be the same delivery: same ``delivery_id``, same bytes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_support import Hub, ListSource, new_person, politie_row, running_hub
from signalhub.apps.demo import Accounting
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.wire import delivery_id

pytestmark = pytest.mark.integration

CODES = ("F350", "F354", "D300", "D500", "I110", "I200")
CHUNKS, CHUNK_SIZE = 6, 50


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A broker of its own: the counts below are not disturbed by other modules' signals."""
    state = tmp_path_factory.mktemp("restart-hub")
    with (
        EmbeddedBroker() as broker,
        running_hub(broker.bootstrap_servers, state, f"restart-{uuid.uuid4().hex[:8]}") as hub,
    ):
        yield hub


def _chunk(number: int) -> ListSource:
    rows = [
        politie_row(new_person(), CODES[(number * CHUNK_SIZE + n) % len(CODES)], ernst="4")
        for n in range(CHUNK_SIZE)
    ]
    return ListSource(rows, name=f"chunk-{number}")


def _accounted(hub: Hub, ids: set[str]) -> int:
    with Accounting(hub.bootstrap, hub.registry, hub.settings) as accounting:
        accounting.read(idle_ms=150)
        return len(ids & accounting.seen)


def test_killing_the_enforcer_mid_stream_loses_no_signal(hub: Hub, tmp_path: Path) -> None:
    first, _ = hub.run_connector("politie", _chunk(0))
    hub.wait_accounted(first.signal_ids)  # the worker has joined its group and is processing

    published: list[str] = list(first.signal_ids)
    failures: list[BaseException] = []

    def publish_the_rest() -> None:
        try:
            for number in range(1, CHUNKS):
                report, _ = hub.run_connector("politie", _chunk(number))
                published.extend(report.signal_ids)
                time.sleep(0.3)
        except BaseException as exc:  # re-raised in the test thread
            failures.append(exc)

    publisher = threading.Thread(target=publish_the_rest, name="publisher")
    publisher.start()
    deadline = time.monotonic() + 30
    while _accounted(hub, set(published)) <= CHUNK_SIZE:
        assert time.monotonic() < deadline, "the worker never took up the second chunk"
    hub.enforcer.kill()
    at_kill = _accounted(hub, set(published))
    publisher.join(60)
    assert not failures, failures
    assert len(published) == CHUNKS * CHUNK_SIZE
    assert at_kill < len(published), "the kill came after the stream, not in the middle of it"

    hub.enforcer.start()
    accounting = hub.wait_accounted(published, timeout_s=90)

    # No signal lost: each one is audited for every subscription of its type.
    rows = hub.audit_rows(accounting, published)
    for signal_id in published:
        expected = hub.expected_decisions(hub.signals[signal_id])
        assert {row["subscription_id"] for row in rows[signal_id]} == set(expected), signal_id
        by_decision: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
        for row in rows[signal_id]:
            by_decision[row["decision_id"]].add((row["outcome"], row["delivery_id"]))
        # A decision made twice is the same decision.
        assert all(len(outcomes) == 1 for outcomes in by_decision.values())

    # Duplicated deliveries are the same delivery: same delivery_id, identical bytes.
    allowed = {
        row["delivery_id"]
        for signal_rows in rows.values()
        for row in signal_rows
        if row["outcome"] == "allow"
    }
    deliveries = hub.wait_deliveries(allowed, published, timeout_s=30)
    copies: dict[str, set[bytes]] = defaultdict(set)
    for delivery in deliveries:
        assert delivery.decoded.delivery_id == delivery_id(delivery.signal_id, delivery.subscriber)
        assert delivery.key == delivery.decoded.delivery_id.encode()
        copies[delivery.decoded.delivery_id].add(delivery.value)
    assert set(copies) == allowed
    assert all(len(values) == 1 for values in copies.values()), "a duplicate differs"
