"""``signalhub up`` with its audit store in PostgreSQL, and PostgreSQL stopped during ingest.

The test starts a PostgreSQL cluster of its own (the machine's shared one must stay up), runs
``up`` against it, keeps feeding signals through the ingest endpoint, stops the database with
``pg_ctl stop -m fast`` and starts it again. What users must see: ``/readyz`` turns 503 naming the
audit store while the database is gone, signals keep being accepted (they wait in Kafka), every
role keeps running, and once the database is back the hub is ready again and every accepted
signal's decisions are in the store exactly once, with the chain intact.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pg_cluster_support import new_pg_cluster, postgres_dsn
from up_support import Feeder, RunningHub, postgres_audit_rows

pytestmark = pytest.mark.integration

#: Seconds within which ``/readyz`` must turn 503 after the database stops.
NOTICE_BOUND_S = 20.0
#: Seconds within which ``/readyz`` must be 200 again after the database starts (ingest backs
#: off up to 10 s between attempts).
RECOVERY_BOUND_S = 60.0
#: Seconds the database stays down while signals keep arriving.
OUTAGE_S = 5.0
AUDIT_CHECKS = ("audit store", "audit ingest")


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def _failing_audit_checks(body: dict[str, Any]) -> list[str]:
    return [
        f"{check['name']}: {check['detail']}"
        for check in body.get("checks", [])
        if check["name"] in AUDIT_CHECKS and not check["ok"]
    ]


def _assert_still_running(hub: RunningHub, pids: dict[str, int]) -> None:
    """``up`` alive, and every role running in the process it had before the outage."""
    assert hub.process is not None
    assert hub.process.poll() is None, f"up exited during the outage:\n{hub.output}"
    for role in hub.hub_state()["roles"]:
        assert role["phase"] not in ("stopped", "failed"), (role, hub.output)
        assert role["pid"] == pids[role["name"]], f"{role['name']} was restarted: {role}"


def test_postgres_stopped_and_started_under_up_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    with new_pg_cluster() as cluster:
        dsn = postgres_dsn(cluster)
        hub = RunningHub(tmp_path / "state", SIGNALHUB_AUDIT_DSN=dsn)
        timings: dict[str, float] = {}
        with hub:
            hub.wait_ready()
            with Feeder(hub, "pg") as feeder:
                _wait_for(lambda: len(postgres_audit_rows(dsn)) > 0, 60, "decisions stored")
                pids = {role["name"]: int(role["pid"]) for role in hub.hub_state()["roles"]}
                accepted_before = len(feeder.accepted)

                cluster.stop()
                stopped = time.monotonic()
                answers: list[tuple[int, dict[str, Any]]] = []

                def not_ready() -> bool:
                    answers.append(hub.readyz())
                    status, body = answers[-1]
                    return status == 503 and bool(_failing_audit_checks(body))

                timings["to_503"] = _wait_for(not_ready, NOTICE_BOUND_S, "/readyz 503 (audit)")
                failing = set(_failing_audit_checks(answers[-1][1]))
                while time.monotonic() - stopped < OUTAGE_S:
                    _assert_still_running(hub, pids)
                    status, body = hub.readyz()
                    assert status == 503, f"/readyz {status} with the database down: {body}"
                    failing |= set(_failing_audit_checks(body))
                    time.sleep(0.5)
                accepted_in_outage = len(feeder.accepted) - accepted_before

                cluster.start()
                timings["down"] = time.monotonic() - stopped
                answers.clear()

                def ready() -> bool:
                    answers.append(hub.readyz())
                    return answers[-1][0] == 200

                try:
                    timings["to_200"] = _wait_for(ready, RECOVERY_BOUND_S, "/readyz 200 again")
                except AssertionError as exc:
                    log = (hub.state_dir / "logs" / "audit-ingest.log").read_text()[-3000:]
                    raise AssertionError(
                        f"{exc}; it last said {answers[-1:]}; audit-ingest log ends:\n{log}"
                    ) from None
                _assert_still_running(hub, pids)
                time.sleep(2)  # signals arriving after the recovery are stored as well

            assert feeder.refused == [], f"ingest refused signals: {feeder.refused}"
            assert accepted_in_outage > 0, "no signal was accepted while PostgreSQL was down"
            _wait_for(
                lambda: feeder.accepted <= {s for _, _, s in postgres_audit_rows(dsn)},
                60,
                "every accepted signal's decisions stored",
            )
            reconcile = hub.wait_reconciled()
            verify = hub.cli("audit", "verify")
            rows = postgres_audit_rows(dsn)
        assert hub.process is not None
        assert hub.process.returncode == 0, hub.output

    print(
        f"\npostgres stopped under up: /readyz 503 after {timings['to_503']:.1f} s, "
        f"200 after {timings['to_200']:.1f} s from the start (down {timings['down']:.1f} s); "
        f"{len(feeder.accepted)} signals accepted, {accepted_in_outage} during the outage, "
        f"{len(rows)} decisions stored; failing while down: {sorted(failing)}"
    )
    entry_ids = [entry for entry, _, _ in rows]
    decision_ids = [decision for _, decision, _ in rows]
    assert len(entry_ids) == len(set(entry_ids)) == len(set(decision_ids))
    assert entry_ids == decision_ids
    assert "no gaps" in reconcile, reconcile
    counted = re.search(r"(\d+) decisions on the audit topic, (\d+) in the store", reconcile)
    assert counted, reconcile
    assert int(counted.group(1)) == int(counted.group(2)) == len(rows)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "chain intact" in verify.stdout
