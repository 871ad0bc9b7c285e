"""One home for the Kafka clients: only ``broker/clients.py`` builds one, and what it builds works.

The scan reads every module of ``services/signalhub`` with ``ast`` and reports ``module:line``
for each call of a Kafka client class, each class derived from one (or from ``faust.App``),
and each import of such a class, outside the factory. Imports under ``if TYPE_CHECKING:`` are
annotations only and never run, so they are allowed.
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ast_support import RuntimeVisitor
from signalhub.broker.clients import KafkaConnection, new_consumer, new_producer
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.broker.reader import assign_topic, drain

ROOT = Path(__file__).resolve().parents[1] / "services" / "signalhub"
FACTORY = ROOT / "broker" / "clients.py"

#: Classes whose instances talk to Kafka, by the name they are imported or called with.
CLIENT_CLASSES = frozenset(
    {
        "KafkaProducer",
        "KafkaConsumer",
        "KafkaAdminClient",
        "KafkaClient",
        "AIOKafkaProducer",
        "AIOKafkaConsumer",
        "AIOKafkaAdminClient",
        "AIOKafkaClient",
    }
)


def _dotted(node: ast.expr) -> str:
    """``faust.App`` for ``faust.App``, ``App`` for ``App``, "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


class _ClientFinder(RuntimeVisitor):
    """Collects ``(line, what)`` for every way a module could build a Kafka client itself."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self._faust_apps = {"faust.App"}  # names that mean faust.App in this module

    def _is_client(self, name: str) -> bool:
        return name.rpartition(".")[2] in CLIENT_CLASSES or name in self._faust_apps

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name in CLIENT_CLASSES:
                self.found.append((node.lineno, f"imports {alias.name} from {node.module}"))
            elif node.module == "faust" and alias.name == "App":
                self.found.append((node.lineno, "imports App from faust"))
                self._faust_apps.add(alias.asname or alias.name)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "faust" and alias.asname:
                self._faust_apps.add(f"{alias.asname}.App")

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        if self._is_client(name):
            self.found.append((node.lineno, f"calls {name}"))
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            name = _dotted(base)
            if self._is_client(name):
                self.found.append((node.lineno, f"class {node.name} derives from {name}"))
        self.generic_visit(node)


def client_constructions(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each place ``source`` builds (or imports to build) a Kafka client."""
    finder = _ClientFinder()
    finder.visit(ast.parse(source))
    return sorted(finder.found)


def test_only_the_factory_builds_kafka_clients() -> None:
    modules = sorted(ROOT.rglob("*.py"))
    assert FACTORY in modules
    violations = [
        f"{path.relative_to(ROOT.parent)}:{line}: {what}"
        for path in modules
        if path != FACTORY
        for line, what in client_constructions(path.read_text(encoding="utf-8"))
    ]
    assert violations == [], "build Kafka clients through signalhub.broker.clients:\n" + "\n".join(
        violations
    )


_PLANTED = """\
from __future__ import annotations
from typing import TYPE_CHECKING
import faust as fst
import kafka
from aiokafka import AIOKafkaProducer
from faust import App as FaustApp
if TYPE_CHECKING:
    from kafka import KafkaConsumer
def build(servers: str, consumer: KafkaConsumer) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=servers)
    admin = kafka.admin.KafkaAdminClient(bootstrap_servers=servers)
    app = fst.App("group")
    other = FaustApp("group")
class Quick(fst.App):
    pass
"""


def test_the_scan_catches_every_planted_construction() -> None:
    assert client_constructions(_PLANTED) == [
        (5, "imports AIOKafkaProducer from aiokafka"),
        (6, "imports App from faust"),
        (10, "calls kafka.KafkaProducer"),
        (11, "calls kafka.admin.KafkaAdminClient"),
        (12, "calls fst.App"),
        (13, "calls FaustApp"),
        (14, "class Quick derives from fst.App"),
    ]


def test_a_connection_option_cannot_be_overridden_by_a_call_site() -> None:
    with pytest.raises(TypeError, match="bootstrap_servers"):
        new_producer(KafkaConnection("127.0.0.1:9"), bootstrap_servers="elsewhere:9092")


@pytest.mark.integration
def test_a_record_produced_by_the_factory_is_read_back_by_the_factory(
    broker: EmbeddedBroker, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("clients")
    connection = KafkaConnection(broker.bootstrap_servers)
    key, value = uuid.uuid4().hex.encode(), b"through the one factory"
    producer = new_producer(connection, acks="all", client_id="test-kafka-clients")
    try:
        producer.send(topic, key=key, value=value).get(timeout=30)
    finally:
        producer.close()
    consumer = new_consumer(connection, enable_auto_commit=False, fetch_max_wait_ms=100)
    try:
        assign_topic(consumer, topic)
        records = [(r.key, r.value) for r in drain(consumer, idle_ms=500, first_wait_ms=10_000)]
    finally:
        consumer.close()
    assert records == [(key, value)]
