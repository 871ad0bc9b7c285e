"""The supervisor's ``hub.json``: trusted while its supervisor lives, ignored once it is gone.

A hub state left behind by an ``up`` that stopped used to make a later bare ``signalhub run
http`` refuse every signal ("supervisor stopped") and ``/readyz`` report roles that no longer
existed.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from signalhub.apps.hub_state import (
    STALE_S,
    HubState,
    RoleState,
    read_hub_state,
    supervised_hub_state,
    write_hub_state,
)
from signalhub.apps.serve import ingest_refusal
from signalhub.apps.status import Check, audit_checks, role_checks
from signalhub.audit.health import INGESTING, IngestStatus
from signalhub.config import load_settings


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _stopped_hub(supervisor_pid: int) -> HubState:
    """What ``up`` writes as it stops: every role stopped, ingest refused."""
    return HubState(
        [RoleState("enforcer", phase="stopped"), RoleState("http", phase="stopped")],
        accepting=False,
        refusal="the hub is stopping",
        supervisor_pid=supervisor_pid,
    )


def test_a_hub_state_whose_supervisor_is_gone_is_ignored(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    write_hub_state(tmp_path, _stopped_hub(_dead_pid()))

    assert read_hub_state(tmp_path) is not None
    assert supervised_hub_state(tmp_path) is None
    assert ingest_refusal(settings)() is None, "a bare http role must take signals"
    assert role_checks(settings) == []


def test_a_live_supervisors_state_is_believed(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    write_hub_state(tmp_path, _stopped_hub(os.getpid()))

    assert ingest_refusal(settings)() == "the hub is stopping"
    [roles, ingest] = role_checks(settings)
    assert not roles.ok
    assert "enforcer stopped" in roles.detail
    assert not ingest.ok


def test_a_live_supervisor_that_fell_silent_is_reported(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    state = HubState([RoleState("enforcer", phase="running")], accepting=True, refusal="")
    write_hub_state(tmp_path, state)

    [roles] = role_checks(settings, now=time.time() + STALE_S + 1)
    assert not roles.ok
    assert "silent" in roles.detail
    assert ingest_refusal(settings)() is None  # fresh: accepting


def test_audit_ingest_is_not_ready_until_its_current_process_has_reported(tmp_path: Path) -> None:
    """A status file left by the audit-ingest process the supervisor replaced proves nothing."""
    settings = load_settings(state_dir=tmp_path)
    state = HubState([RoleState("audit-ingest", phase="running", pid=os.getpid())])
    write_hub_state(tmp_path, state)

    def audit_ingest_check() -> Check:
        return next(c for c in audit_checks(settings, "") if c.name == "audit ingest")

    assert not audit_ingest_check().ok, "no status at all yet"
    IngestStatus(tmp_path).update(INGESTING, "0 decisions stored")  # written by this process
    assert "not yet reached" not in audit_ingest_check().detail

    state.roles[0].pid = _dead_pid()  # restarted: a new process that has said nothing yet
    write_hub_state(tmp_path, state)
    check = audit_ingest_check()
    assert not check.ok
    assert "not yet reached Kafka" in check.detail


def test_a_role_restarted_while_readiness_was_checked_is_not_ready(tmp_path: Path) -> None:
    """Lag is counted by reading, so a check takes a while; a kill and restart within it must
    not pass as "running at both ends" (CI once saw /readyz stay 200 through such a window)."""
    settings = load_settings(state_dir=tmp_path)
    before = HubState([RoleState("audit-ingest", phase="running", restarts=2)], accepting=True)
    write_hub_state(tmp_path, HubState([RoleState("audit-ingest", phase="running", restarts=3)]))

    [roles, _] = role_checks(settings, before=before)
    assert not roles.ok
    assert roles.detail == "audit-ingest restarted while readiness was checked"
    [unchanged, _] = role_checks(settings, before=read_hub_state(tmp_path))
    assert unchanged.ok
