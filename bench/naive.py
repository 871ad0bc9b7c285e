"""Naive baseline: what a user would build from the named parts, without the hub's design.

A kafka-python consumer that, for every (signal, subscription) pair — every possible delivery —
asks an OPA server over HTTP through opa-python-client's ``query_rule``, pseudonymises the
permitted fields, encodes the subscriber's view and produces it, waiting for each send. No
memoisation, no batching, no audit trail (which only flatters it). The OPA server is
:class:`signalhub.policy.rest_server.PolicyServer` (OPA's REST API on the embedded engine) in its
own process, as an OPA sidecar would be.

Run as ``python -m bench.naive serve PORT POLICIES_DIR`` it is that server (a child process).
"""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from opa_client import OpaClient

from bench.common import (
    Mode,
    Row,
    bench_settings,
    check_child,
    produce,
    scratch_dir,
    start_child,
    stop_child,
)
from bench.workload import SignalFactory
from signalhub.broker.embedded import EmbeddedBroker, free_port
from signalhub.config import Settings
from signalhub.policy.decision import build_input, parse_decisions
from signalhub.pseudonym.keys import load_master_key
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema.codec import decode, encode
from signalhub.schema.registry import SchemaRegistry, policy_attributes
from signalhub.subscriptions import by_signal_type, load_subscriptions

__all__ = ["run", "serve"]


def run(mode: Mode, registry: SchemaRegistry) -> list[Row]:
    signals = list(SignalFactory(registry, seed=5).signals(mode.naive_signals))
    with scratch_dir("naive") as scratch, EmbeddedBroker() as broker:
        settings = bench_settings(scratch)
        bootstrap = broker.bootstrap_servers
        topics = sorted({s.topic for s in signals})
        broker.create_topics(topics, partitions=settings.partitions)
        sinks = {
            f"deliveries.{s.subscriber}" for s in load_subscriptions(settings.subscriptions_file)
        }
        broker.create_topics(sorted(sinks), partitions=1)
        produce(bootstrap, ((s.topic, s.key, s.value) for s in signals))
        port = free_port()
        log = scratch / "policy-server.log"
        server = start_child(
            ["-m", "bench.naive", "serve", str(port), str(settings.policies_dir)], log
        )
        try:
            _wait_healthy(port, lambda: check_child(server, log))
            handled, delivered, queries, seconds = consume_naively(
                settings, registry, bootstrap, topics, port, len(signals)
            )
        finally:
            stop_child(server)
    facts = {
        "signals": handled,
        "deliveries": delivered,
        "opa_queries": queries,
        "seconds": seconds,
    }
    note = "kafka-python, 1 OPA HTTP query per delivery, sends awaited"
    return [
        Row("naive", "signals/s", handled / seconds, "sig/s", note, facts),
        Row("naive", "deliveries/s", delivered / seconds, "del/s", note),
    ]


def consume_naively(
    settings: Settings,
    registry: SchemaRegistry,
    bootstrap: str,
    topics: Sequence[str],
    port: int,
    expected: int,
) -> tuple[int, int, int, float]:
    """(signals handled, deliveries produced, OPA queries, seconds from first fetch to last ack)."""
    subscriptions = by_signal_type(load_subscriptions(settings.subscriptions_file))
    master_key, version = load_master_key(settings)
    pseudonymiser = Pseudonymiser(master_key, version)
    opa = OpaClient(host="127.0.0.1", port=port, retries=0, timeout=5.0)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=-1, linger_ms=0)
    assigned = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    handled = delivered = queries = 0
    started = 0.0
    deadline = time.monotonic() + 300
    try:
        while handled < expected and time.monotonic() < deadline:
            for record in consumer:
                started = started or time.perf_counter()
                _, signal = decode(registry, record.value)
                schema = registry.signal(signal["envelope"]["signal_type"])
                now = datetime.now(UTC).date()
                attributes = policy_attributes(schema, signal["payload"], now)
                for sub in subscriptions.get(schema.signal_type, ()):
                    policy_input = build_input(
                        schema.signal_type,
                        signal["envelope"]["source_agency"],
                        attributes,
                        [sub.policy_view()],
                        now,
                    )
                    answer = opa.query_rule(policy_input, "signalhub.sharing", "decisions")
                    queries += 1
                    decision = parse_decisions(answer.get("result", {}), [sub.id], "naive")[sub.id]
                    if not decision.allow:
                        continue
                    names = [spec.name for spec in schema.payload_fields]
                    hidden = set(decision.pseudonymise)
                    clear = [n for n in names if n in decision.fields and n not in hidden]
                    pseudo = [n for n in names if n in hidden]
                    view_schema = registry.view_schema(schema.signal_type, clear, pseudo)
                    payload = signal["payload"]
                    projected = {n: payload.get(n) for n in clear}
                    for name in pseudo:
                        value = payload.get(name)
                        kind = schema.field(name).pii or name
                        projected[name] = (
                            None
                            if value is None
                            else pseudonymiser.pseudonym(decision.domain, kind, str(value))
                        )
                    view = {
                        "envelope": signal["envelope"],
                        "delivery": {
                            "delivery_id": f"{signal['envelope']['signal_id']}/{sub.subscriber}",
                            "subscriber": sub.subscriber,
                            "purpose": sub.purpose,
                            "legal_basis": decision.legal_basis,
                            "policy_version": decision.policy_version,
                            "pseudonym_domain": decision.domain,
                            "withheld": [n for n in names if n not in clear and n not in hidden],
                        },
                        "payload": projected,
                    }
                    producer.send(
                        sub.topic, encode(registry, view_schema, view), key=record.key
                    ).get(10)
                    delivered += 1
                handled += 1
                if handled >= expected:
                    break
    finally:
        consumer.close()
        producer.close()
        opa.close_connection()
    return handled, delivered, queries, time.perf_counter() - started


def _wait_healthy(port: int, alive: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            alive()  # type: ignore[operator]
            time.sleep(0.1)
    raise RuntimeError(f"the policy server on port {port} did not become healthy")


def serve(port: int, policies_dir: Path) -> None:
    """The OPA-REST-compatible policy server, in this process, until SIGTERM."""
    from signalhub.policy.rest_server import PolicyServer

    server = PolicyServer(port=port)
    server.load_dir(policies_dir)
    server.serve_forever()


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve(int(sys.argv[2]), Path(sys.argv[3]))
