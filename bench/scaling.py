"""Scaling: one and two enforcer workers in one consumer group on signal topics with 4 partitions.

Workers are started first and the load is published once the group is stable with every member
(asked of the broker with DescribeGroups), so neither run pays for a rebalance in its window.
Both runs use the same signals on a fresh broker. The machine's core count is recorded with the
figures: two workers can only scale if there are cores for them beside the broker.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient

from bench.common import Mode, Row, bench_settings, produce, scratch_dir
from bench.hub import create_hub_topics, enforcers, throughput
from bench.workload import SignalFactory
from signalhub.apps.stack import EnforcerProcess
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions

__all__ = ["PARTITIONS", "run"]

PARTITIONS = 4


def run(mode: Mode, registry: SchemaRegistry) -> list[Row]:
    signals = list(SignalFactory(registry, seed=17).signals(mode.scaling_signals))
    rates: dict[int, float] = {}
    for count in (1, 2):
        with scratch_dir(f"scaling{count}") as scratch, EmbeddedBroker() as broker:
            settings = bench_settings(scratch, partitions=PARTITIONS)
            bootstrap = broker.bootstrap_servers
            subscriptions = by_signal_type(load_subscriptions(settings.subscriptions_file))
            create_hub_topics(settings, bootstrap)
            with enforcers(settings, bootstrap, scratch, count) as workers:
                _wait_for_members(bootstrap, settings.enforcer_group, count, workers)
                produce(bootstrap, ((s.topic, s.key, s.value) for s in signals))
                result = throughput(settings, bootstrap, signals, subscriptions, workers)
            rates[count] = result.signals_per_s
    cores = os.cpu_count() or 0
    note = f"{PARTITIONS} partitions per signal topic, {cores} CPU cores on this machine"
    return [
        Row("scaling", "1 worker", rates[1], "sig/s", note),
        Row("scaling", "2 workers", rates[2], "sig/s", note),
        Row("scaling", "2 ÷ 1 workers", rates[2] / rates[1], "x", note, {"cpu_count": cores}),
    ]


def _wait_for_members(
    bootstrap: str,
    group: str,
    count: int,
    workers: Sequence[EnforcerProcess],
    timeout_s: float = 60.0,
) -> None:
    """Block until ``group`` is Stable with ``count`` members (or raise after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            worker.check_alive()
        state, members = asyncio.run(_describe(bootstrap, group))
        if state == "Stable" and members == count:
            time.sleep(1.0)  # let the assignment reach the fetchers
            return
        time.sleep(0.25)
    raise RuntimeError(f"consumer group {group} did not become stable with {count} members")


async def _describe(bootstrap: str, group: str) -> tuple[str, int]:
    """(state, member count) of a consumer group; ("", 0) while it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="signalhub-bench")
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        for _error, name, state, _ptype, _protocol, members in response.groups:
            if name == group:
                return str(state), len(members)
    except Exception:  # the group coordinator is not ready yet
        return "", 0
    finally:
        await admin.close()
    return "", 0
