"""The enforcer as a faust worker: read signal topics, call the pure core, produce its outputs.

Everything that decides lives in :mod:`signalhub.enforcer.core`; this module only wires it to
Kafka; the core is built from the settings in :mod:`signalhub.apps.enforcer`, the enforcer
role's composition root. Two adjustments at the edge, both because of the embedded broker
(DESIGN.md):

* faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500`` and tansu holds every fetch for
  the full wait, which put a ~1.3 s floor under latency. The faust app comes from
  :func:`signalhub.broker.clients.new_faust_app`, whose consumer sets the configured wait
  (default 100 ms) before it starts.
* faust Tables restore stale state from tansu's changelogs, so the enforcer keeps no state in
  them: decisions are recomputed, memoised in memory only.

At-least-once: outputs are handed to the producer before the event is acknowledged, and faust
flushes the producer before it commits offsets, so a crash re-processes (same ``delivery_id``)
but never loses a signal.

Pseudonyms before deliveries: a batch's outputs are produced only after the vault has recorded
every pseudonym they carry (:meth:`~signalhub.enforcer.core.Enforcement.process_batch`). When it
cannot (:class:`~signalhub.errors.StateWriteError`: disk full, read-only, I/O error) the worker
logs one line and leaves at once with ``os._exit`` (exit code 74), like a killed worker: nothing
of the batch produced, nothing committed, so the supervisor's restart processes it again. Not
through faust's crash path: ``take_events`` acknowledges the failing batch in its ``finally``
and faust's shutdown commits acknowledged offsets, which would skip the batch for good; that
shutdown also waits on timeouts of its own.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn

import faust
import mode

from signalhub.broker.admin import create_topics
from signalhub.broker.clients import KafkaConnection, new_faust_app
from signalhub.config import Settings
from signalhub.enforcer.core import Enforcement
from signalhub.enforcer.outputs import SourceRecord
from signalhub.errors import StateWriteError
from signalhub.policy.switch import PolicyWatcher, SwitchablePolicy
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import load_subscriptions, subscribers
from signalhub.wire import (
    AUDIT_TOPIC,
    BLOCKED_TOPIC,
    DLQ_TOPIC,
    PARKED_TOPIC,
    VIEW_SCHEMAS_TOPIC,
    deliveries_topic,
)

__all__ = [
    "build_enforcer_app",
    "enforcer_topics",
]

logger = logging.getLogger(__name__)

#: Events handled per batch; one log line and one producer hand-off loop per batch.
BATCH_SIZE = 500
#: How long a batch waits to fill before it is processed anyway (seconds).
BATCH_WITHIN_S = 0.01


def enforcer_topics(settings: Settings) -> tuple[list[str], list[str]]:
    """(signal topics it reads, topics it writes), from the schemas and subscriptions."""
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    sources = [registry.signal(signal_type).topic for signal_type in registry.signal_types()]
    names = subscribers(load_subscriptions(settings.subscriptions_file))
    sinks = [deliveries_topic(name) for name in names]
    sinks += [AUDIT_TOPIC, DLQ_TOPIC, PARKED_TOPIC, VIEW_SCHEMAS_TOPIC, BLOCKED_TOPIC]
    return sources, sinks


def build_enforcer_app(
    settings: Settings, bootstrap_servers: str, enforcement: Enforcement
) -> faust.App:
    """The faust app with one agent over every signal topic.

    When the enforcement decides through a :class:`SwitchablePolicy`, the latest version on the
    ``policies`` topic is put in force before the first signal, and a watcher thread switches to
    every later one without a restart (``app.signalhub_policy_watcher``).
    """
    sources, sinks = enforcer_topics(settings)
    create_topics(bootstrap_servers, sources, partitions=settings.partitions)
    create_topics(bootstrap_servers, sinks, partitions=1)
    policy = enforcement.policy
    watcher = None
    if isinstance(policy, SwitchablePolicy):
        watcher = PolicyWatcher(settings, bootstrap_servers, policy)
        logger.info("policy %s in force at start-up", watcher.catch_up())
        watcher.start()
    connection = KafkaConnection.from_settings(settings, bootstrap_servers)
    app = new_faust_app(connection, settings, settings.enforcer_group)
    app.signalhub_policy_watcher = watcher  # type: ignore[attr-defined]
    signal_topics = app.topic(*sources, key_type=bytes, value_type=bytes)

    # An unexpected error in the agent is a bug: crash the worker (exit non-zero, offsets of the
    # failing batch uncommitted) instead of leaving a live process with a dead agent.
    @app.agent(signal_topics, name="enforce", supervisor_strategy=mode.CrashingSupervisor)
    async def enforce(stream: Any) -> AsyncIterator[None]:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            try:
                await _enforce_batch(app, enforcement, events)
            except StateWriteError as exc:
                _exit_on_state_write_failure(exc)
            yield None

    return app


def _exit_on_state_write_failure(exc: StateWriteError) -> NoReturn:
    """Log why in one line and leave now, without faust's shutdown (see the module doc)."""
    logger.critical("%s; exiting so the supervisor restarts this worker", exc)
    logging.shutdown()  # flush every handler: os._exit skips that
    sys.stderr.flush()
    os._exit(exc.exit_code)


async def _enforce_batch(app: faust.App, enforcement: Enforcement, events: Sequence[Any]) -> None:
    """Hand every output of the batch to the producer once the vault holds its pseudonyms.

    faust flushes the producer before it commits the offsets.
    """
    producer = app.producer
    delivered_before = sum(enforcement.stats.deliveries.values())
    dead_before = sum(enforcement.stats.dead_letters.values())
    records = [
        SourceRecord(m.topic, m.partition, m.offset, m.key, m.value)
        for m in (event.message for event in events)
    ]
    for output in enforcement.process_batch(records):
        await producer.send(
            output.topic, output.key, output.value, None, None, list(output.headers)
        )
    logger.info(
        "%s: %d signals, %d deliveries, %d dead letters",
        _offset_ranges(events),
        len(events),
        sum(enforcement.stats.deliveries.values()) - delivered_before,
        sum(enforcement.stats.dead_letters.values()) - dead_before,
    )


def _offset_ranges(events: Sequence[Any]) -> str:
    """``topic[partition]@first..last`` for each partition a batch came from."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for event in events:
        message = event.message
        key = (message.topic, message.partition)
        first, _ = ranges.get(key, (message.offset, message.offset))
        ranges[key] = (first, message.offset)
    return ", ".join(f"{t}[{p}]@{a}..{b}" for (t, p), (a, b) in ranges.items())
