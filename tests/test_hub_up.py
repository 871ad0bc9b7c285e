"""``signalhub up`` as operators run it: every role supervised, nothing lost, health honest.

Each test starts ``up`` as a subprocess with a state directory and HTTP port of its own, feeds
it through the ingest endpoint or ``signalhub connector run``, kills parts of it, and asserts
on the audit store, ``signalhub audit reconcile``, ``/readyz`` and exit codes.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from process_support import wait_until
from signalhub.apps.roles import CLIENT_ROLES
from up_support import PG_ADMIN_DSN, Feeder, RunningHub, gemeente_records

pytestmark = pytest.mark.integration

CONNECTORS = ("gemeente", "politie", "schuldhulpverlening", "woningcorporatie")


def _decisions_counted(reconcile_output: str) -> tuple[int, int]:
    found = re.search(r"(\d+) decisions on the audit topic, (\d+) in the store", reconcile_output)
    assert found, reconcile_output
    return int(found.group(1)), int(found.group(2))


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    assert wait_until(condition, timeout_s), f"timed out after {timeout_s} s waiting for {what}"


@pytest.fixture
def postgres_dsn() -> object:
    """A schema of its own in the machine's PostgreSQL, dropped afterwards."""
    schema = f"up_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_ADMIN_DSN}?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_connector_run_under_up_is_audited_whole(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = {"SIGNALHUB_BROKER_STORAGE": "durable"} if backend == "sqlite" else {}
    if backend == "postgres":
        env["SIGNALHUB_AUDIT_DSN"] = str(request.getfixturevalue("postgres_dsn"))
    hub = RunningHub(tmp_path / "state", **env)
    with hub:
        hub.wait_ready()
        _wait_for(lambda: "signalhub is up and ready" in hub.output, 10, "the ready line")
        assert f"{hub.base}/console/" in hub.output
        assert "signalhub console user add" in hub.output  # no console user yet
        for name in CONNECTORS:
            run = hub.cli("connector", "run", name)
            assert run.returncode == 0, run.stderr
        summary = hub.wait_reconciled()
        on_topic, in_store = _decisions_counted(summary)
        assert on_topic == in_store > 100
        status, body = hub.readyz()
        assert status == 200, body
        assert {c["name"] for c in body["checks"]} >= {"roles", "ingest", "audit store"}
    assert hub.process is not None
    assert hub.process.returncode == 0, hub.output


def test_every_role_killed_mid_stream_is_restarted_and_nothing_accepted_is_lost(
    tmp_path: Path,
) -> None:
    hub = RunningHub(tmp_path / "state", SIGNALHUB_BROKER_STORAGE="durable")
    with hub:
        hub.wait_ready()
        with Feeder(hub, "kill") as feeder:
            for name in ("broker", *CLIENT_ROLES):
                before = hub.role(name)
                pid = hub.kill_role(name)
                seen_not_ready = False
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not seen_not_ready:
                    seen_not_ready = hub.readyz()[0] != 200
                assert seen_not_ready, f"/readyz stayed 200 after {name} was killed"
                _wait_for(
                    lambda n=name, p=pid: (
                        hub.role(n)["pid"] not in (None, p) and hub.role(n)["phase"] == "running"
                    ),
                    60,
                    f"{name} restarted",
                )
                assert hub.role(name)["restarts"] > before["restarts"]
                hub.wait_ready(timeout_s=120)
                assert f"role {name} exited with code -9" in hub.output
            time.sleep(2)
        assert feeder.accepted, "no signal was accepted"
        try:
            _wait_for(
                lambda: feeder.accepted <= hub.audited_signal_ids(), 60, "every accepted signal"
            )
        except AssertionError:
            missing = feeder.accepted - hub.audited_signal_ids()
            when = [
                time.strftime("%H:%M:%S", time.localtime(t))
                for t, _, ids in feeder.log
                if set(ids) & missing
            ]
            raise AssertionError(
                f"{len(missing)} accepted, never audited, taken at {when}:\n{hub.output}"
            ) from None
        hub.wait_reconciled()
    assert "the broker restarted: restarting every role's Kafka clients" in hub.output


def test_a_broker_kill_then_a_kill_of_up_loses_nothing_accepted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = RunningHub(state, SIGNALHUB_BROKER_STORAGE="durable")
    with first:
        first.wait_ready()
        response = first.ingest(gemeente_records("before", 20))
        assert response.status_code == 200, response.text
        accepted = {p["signal_id"] for p in response.json()["published"]}
        first.kill_role("broker")
        _wait_for(lambda: first.role("broker")["phase"] == "running", 60, "broker restart")
        first.kill()  # up and, by the parent-death signal, every role with it
    second = RunningHub(state, SIGNALHUB_BROKER_STORAGE="durable")
    with second:
        second.wait_ready()
        _wait_for(lambda: accepted <= second.audited_signal_ids(), 120, "every accepted signal")
        second.wait_reconciled()
        assert "broker data lost" not in second.output


def test_memory_storage_is_loud_and_a_lost_broker_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    hub = RunningHub(state)  # memory, the default
    with hub:
        hub.wait_ready()
        assert "a restart of the broker or of the hub loses every signal" in hub.output
        response = hub.ingest(gemeente_records("mem", 3))
        assert response.status_code == 200
        hub.kill_role("broker")
        _wait_for(lambda: "broker data lost" in hub.output, 60, "the loss to be reported")
        hub.wait_ready()
        body = hub.readyz()[1]
        assert any(c["name"] == "incidents" for c in body["checks"])
        reconcile = hub.cli("audit", "reconcile")
        assert "broker data lost: records held between" in reconcile.stdout


def test_a_role_that_keeps_dying_stops_the_hub_with_its_cause(tmp_path: Path) -> None:
    hub = RunningHub(
        tmp_path / "state",
        SIGNALHUB_POLICY_ENGINE="server",
        SIGNALHUB_OPA_URL="http://127.0.0.1:9",  # nothing listens: the enforcer cannot start
    )
    hub.start()
    assert hub.process is not None
    code = hub.process.wait(timeout=300)
    assert code == 1, hub.output
    assert "the enforcer role exited 5 times" in hub.output
    assert "signalhub is up and ready" not in hub.output
