"""Framework floor: the fastest idiomatic faust pass-through, no processing.

The faust app the enforcer runs (`new_faust_app`, with its short-fetch consumer, imported from
:mod:`signalhub.broker.clients`, not copied), the same signal topics and partitions, the same
record mix, web server off, ``stream.take_events()`` batches with producer sends that are not
awaited per record. It writes one output per input and does nothing else, so it is what faust itself
costs per record: the enforcer cannot be faster than this on one worker.

A second row runs the same agent with the enforcer's fan-out: :data:`FANOUT` records out per
record in (the enforcer's 2.34 deliveries plus one audit entry per signal on this workload, as
the signalhub row reports). Its inputs/s is what moving a signal's records costs in faust, so
signalhub ÷ that row shows how much of the remaining gap is enforcement work.

Run as ``python -m bench.floor BOOTSTRAP GROUP SINK STATE_DIR FANOUT`` it is the worker (a child
process).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    Mode,
    Row,
    bench_settings,
    check_child,
    count_outputs,
    produce,
    scratch_dir,
    start_child,
    stop_child,
)
from bench.workload import EncodedSignal, SignalFactory
from signalhub.broker.clients import KafkaConnection, new_faust_app
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.enforcer.worker import BATCH_SIZE, BATCH_WITHIN_S
from signalhub.schema.registry import SchemaRegistry

__all__ = ["run", "worker"]

_SINK = "bench.floor.out"
#: Records the enforcer produces per signal on the benchmark workload: 2.34 deliveries + 1 audit.
FANOUT = 3.34


def run(mode: Mode, registry: SchemaRegistry) -> list[Row]:
    factory = SignalFactory(registry, seed=7)
    signals = list(factory.signals(mode.floor_records))
    records, seconds = _pass_through(signals, 1.0)
    inputs, fan_seconds = _pass_through(signals, FANOUT)
    return [
        Row(
            "framework floor",
            "records/s",
            records / seconds,
            "rec/s",
            f"faust take_events({BATCH_SIZE}) pass-through, 1 worker",
            {"records": records, "seconds": seconds},
        ),
        Row(
            "framework floor",
            f"inputs/s at {FANOUT} out",
            inputs / fan_seconds,
            "in/s",
            f"the same, {FANOUT} records out per record in (the enforcer's fan-out)",
            {"inputs": inputs, "fanout": FANOUT, "seconds": fan_seconds},
        ),
    ]


def _pass_through(signals: Sequence[EncodedSignal], fanout: float) -> tuple[int, float]:
    """(inputs passed through, seconds) for one pass-through worker over ``signals``."""
    expected = sum(_copies(index, fanout) for index in range(len(signals)))
    with scratch_dir("floor") as scratch, EmbeddedBroker() as broker:
        settings = bench_settings(scratch)
        bootstrap = broker.bootstrap_servers
        topics = sorted({s.topic for s in signals})
        broker.create_topics(topics, partitions=settings.partitions)
        broker.create_topics([_SINK], partitions=1)
        produce(bootstrap, ((s.topic, s.key, s.value) for s in signals))
        log = scratch / "floor.log"
        args = ["-m", "bench.floor", bootstrap, "bench-floor", _SINK, str(scratch), str(fanout)]
        child = start_child(args, log)
        try:
            seen = count_outputs(
                bootstrap,
                {_SINK: 1},
                until={_SINK: expected},
                idle_s=0.5,
                timeout_s=120,
                alive=lambda: check_child(child, log),
            )
        finally:
            stop_child(child, grace_s=0)  # counted already; a graceful faust stop takes seconds
    return round(seen.total / expected * len(signals)), seen.window_s


def _copies(index: int, fanout: float) -> int:
    """Records out for the ``index``-th record in: on average ``fanout``, spread evenly."""
    return int((index + 1) * fanout) - int(index * fanout)


def worker(bootstrap: str, group: str, sink: str, state_dir: Path, fanout: float) -> None:
    """The pass-through agent, configured like the enforcer; blocks until SIGTERM."""
    import faust

    settings = bench_settings(state_dir)
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    sources = [registry.signal(t).topic for t in registry.signal_types()]
    app = new_faust_app(KafkaConnection.from_settings(settings, bootstrap), settings, group)
    source = app.topic(*sources, key_type=bytes, value_type=bytes)

    @app.agent(source, name="passthrough")
    async def passthrough(stream: Any) -> AsyncIterator[None]:
        index = 0
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            producer = app.producer
            for event in events:
                message = event.message
                for _ in range(_copies(index, fanout)):
                    await producer.send(sink, message.key, message.value, None, None, None)
                index += 1
            yield None

    for noisy in ("aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    faust.Worker(
        app, loglevel="warning", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]), float(sys.argv[5]))
