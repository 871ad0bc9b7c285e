"""A running hub with its console, for the console's integration and browser tests.

:func:`console_hub` starts a broker of its own (the counters are compared with the audit of
exactly this run, so no other test's signals may be on its topics), one enforcer worker via
:func:`signalhub.apps.demo.run_stack`, publishes the shipped sample data plus two records that must
be dead-lettered, waits until every signal is accounted for, and serves the console with
uvicorn on a free loopback port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from signalhub.apps.demo import (
    FOREIGN_RECORD,
    Accounting,
    DemoReport,
    find_inputs,
    prepare_settings,
    publish_inputs,
    run_stack,
)
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.config import Settings, load_settings
from signalhub.connector.definition import load_definitions
from signalhub.connector.publisher import KafkaPublisher
from signalhub.console.app import console_app
from signalhub.console.auth import UserStore
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "PASSWORD",
    "ConsoleHub",
    "console_hub",
    "free_port",
    "login",
    "wrong_topic_record",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
#: A BSN that passes the eleven test, in the one record the tests put on the wrong topic.
WRONG_TOPIC_BSN = "111222333"
WRONG_TOPIC_NAME = "Wilhelmina Testpersoon"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wrong_topic_record(registry: SchemaRegistry) -> tuple[str, bytes]:
    """A valid nuisance report with clear identifiers, to be put on the drug_signal topic."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(microsecond=0)
    signal_id = str(uuid.uuid4())
    record = {
        "envelope": {
            "signal_id": signal_id,
            "signal_type": "nuisance_report",
            "source_agency": "gemeente",
            "source_ref": "console-test-1",
            "observed_at": now,
            "registered_at": now,
            "schema_version": registry.signal("nuisance_report").version,
        },
        "payload": {
            "subject_bsn": WRONG_TOPIC_BSN,
            "subject_name": WRONG_TOPIC_NAME,
            "address": "Teststraat 1",
            "postcode": "6211AB",
            "category": "noise",
            "severity": 3,
            "reporter_type": "resident",
            "neighbourhood_code": "BU09350101",
            "description": "loud music at night",
        },
    }
    schema = registry.signal("nuisance_report")
    return signal_id, codec.encode(registry, schema.avro, record)


@dataclass
class ConsoleHub:
    """The running hub: its settings, broker, console URL and what was published."""

    settings: Settings
    bootstrap: str
    url: str
    registry: SchemaRegistry
    report: DemoReport
    signal_ids: set[str]
    accounting: Accounting
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, follow_redirects=False)

    def publish_samples(self) -> set[str]:
        """Run the sample connectors again (new signals, since ids derive from the run)."""
        report = DemoReport()
        definitions = load_definitions(self.settings.connectors_dir)
        inputs = find_inputs(definitions, None, self.settings.connectors_dir)
        publish_inputs(
            self.bootstrap, self.settings, self.registry, definitions, inputs, report, _quiet
        )
        return {signal_id for run in report.runs for signal_id in run.signal_ids}


def _quiet(line: str) -> None:
    """Progress lines are not needed in tests."""


def login(client: httpx.Client, user: str) -> str:
    """Log ``client`` in as ``user``; returns the session's CSRF token (from a page)."""
    page = client.get("/console/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post(
        "/console/login", data={"username": user, "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 303, answer.text
    home = client.get("/console/audit" if user.startswith("anna") else "/console/dashboard")
    return home.text.split('name="csrf_token" value="')[1].split('"')[0]


@contextlib.contextmanager
def console_hub(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConsoleHub]:
    state = tmp / "state"
    monkeypatch.setenv("SIGNALHUB_SAMPLE_INTERVAL_S", "0.5")
    settings = prepare_settings(
        load_settings(state_dir=state, enforcer_group=f"console-{uuid.uuid4().hex[:8]}")
    )
    users = UserStore.in_state_dir(settings.state_dir)
    for name, role in (("olga", "operator"), ("sam", "security_officer"), ("anna", "auditor")):
        users.add(name, role, PASSWORD)
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        bootstrap = broker.bootstrap_servers
        stack.enter_context(run_stack(settings, bootstrap, _quiet))
        report = DemoReport()
        definitions = load_definitions(settings.connectors_dir)
        inputs = find_inputs(definitions, None, settings.connectors_dir)
        publish_inputs(bootstrap, settings, registry, definitions, inputs, report, _quiet)
        wrong_id, wrong_value = wrong_topic_record(registry)
        publisher = KafkaPublisher(bootstrap)
        publisher.publish("signals.nuisance_report", b"foreign-1", FOREIGN_RECORD)
        publisher.publish("signals.drug_signal", wrong_id.encode(), wrong_value)
        publisher.flush()
        publisher.close()
        ids = {signal_id for run in report.runs for signal_id in run.signal_ids}
        accounting = stack.enter_context(Accounting(bootstrap, registry, settings))
        accounting.wait_for(ids, _quiet, dead_letters=2)
        app = console_app(settings, bootstrap, stack)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        stack.callback(thread.join, 10)
        stack.callback(setattr, server, "should_exit", True)
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the console did not start")
            time.sleep(0.05)
        hub = ConsoleHub(
            settings, bootstrap, f"http://127.0.0.1:{port}", registry, report, ids, accounting
        )
        hub.extra["wrong_topic_id"] = wrong_id
        yield hub
