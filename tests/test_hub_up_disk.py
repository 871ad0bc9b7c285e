"""A full state disk under ``signalhub up``: the roles that must write stop, the hub waits.

``up`` runs with its whole state directory (keys, vault, stores, role logs, ``hub.json``) on a
small tmpfs that the test fills while new people's signals come in. The enforcer must exit 74
before it delivers a pseudonym the vault lacks, the supervisor must keep retrying it without
calling that a crash loop, ``/readyz`` must say 503 meanwhile, and the roles that only log must
keep running. Once the filler is deleted the hub must be ready again within a bound, with every
accepted signal audited and ``signalhub audit reconcile`` passing.

The broker keeps its data in memory here. Durable broker data lives in the same state directory,
and on a full disk the embedded broker itself fails (its role exits 3, then 1 on every restart
until space returns): no signal is taken, so the enforcer would have nothing to enforce.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from disk_support import delivered_pseudonyms, fill, missing_from_vault, mounted_tmpfs
from signalhub.apps.hub_state import HubState, RoleState, read_hub_state, write_hub_state
from signalhub.apps.supervisor import CRASH_LOOP_EXITS, MAX_BACKOFF_S
from signalhub.errors import StateWriteError
from up_support import Feeder, RunningHub, gemeente_records

pytestmark = pytest.mark.integration

#: The hub takes well under 1 MB at start with memory broker storage; the rest is for logs.
TMPFS_SIZE = "32m"
#: From the disk filling to the enforcer's exit 74 (its batch fails at the first vault write).
EXIT_BOUND_S = 30.0
#: Until the enforcer has failed on the full disk as often as a crash loop would take.
RETRIES_BOUND_S = 150.0
#: From the filler's deletion to ``/readyz`` 200: the longest backoff plus a role's start.
RECOVERY_BOUND_S = MAX_BACKOFF_S + 60.0
#: The line ``up`` prints when the enforcer exits because it cannot write (once per exit).
_EXIT_LINE = re.compile(
    rf"^\d\d:\d\d:\d\d role enforcer exited with code {StateWriteError.exit_code} ", re.M
)
#: Roles that write nothing on the state disk but their log: a full disk must not stop them.
LOG_ONLY_ROLES = ("broker", "audit-ingest", "webhooks", "http")


@dataclass
class FullDiskWatch:
    """What was seen while the disk was full: readiness answers and the enforcer's exits."""

    ready_answers: list[int] = field(default_factory=list)
    #: ``/readyz`` said why: a role that cannot write the state directory.
    reason_named: bool = False
    enforcer_exits: int = 0
    seen_restarting: bool = False


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, hub: RunningHub) -> float:
    """Seconds until ``condition()`` held; fails with up's output after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}:\n{hub.output}")


def _watch_full_disk(hub: RunningHub, watch: FullDiskWatch) -> bool:
    """One look at the hub on the full disk; True once the enforcer failed often enough."""
    assert hub.process is not None
    assert hub.process.poll() is None, f"up exited on a full disk:\n{hub.output}"
    enforcer = hub.role("enforcer")
    if enforcer["last_exit_code"] is not None:
        assert enforcer["last_exit_code"] == StateWriteError.exit_code, enforcer
        watch.seen_restarting |= enforcer["phase"] == "restarting"
        status, body = hub.readyz()
        watch.ready_answers.append(status)
        details = " ".join(c["detail"] for c in body.get("checks", []) if not c["ok"])
        watch.reason_named |= "cannot write the state directory" in details
    watch.enforcer_exits = len(_EXIT_LINE.findall(hub.output))
    return watch.enforcer_exits >= CRASH_LOOP_EXITS and watch.seen_restarting


def test_the_hub_state_still_says_why_on_a_full_disk(tmp_path: Path) -> None:
    """``hub.json`` is how ``/readyz`` and ``status`` learn of an exit 74: it must not go stale."""
    with mounted_tmpfs(tmp_path / "state", "1m") as state:
        hub = HubState([RoleState("enforcer", phase="running")], accepting=True, refusal="")
        write_hub_state(state, hub)
        fill(state / "filler")
        enforcer = hub.roles[0]
        enforcer.phase, enforcer.last_exit_code = "restarting", StateWriteError.exit_code
        enforcer.detail = "exited with code 74 after 7 s: it cannot write the state directory"
        write_hub_state(state, hub)
        assert read_hub_state(state) == hub
        assert not (state / "hub.tmp").exists(), "no empty temporary file left behind"
        enforcer.detail = ""  # shorter than what is on disk: padded, still one JSON document
        write_hub_state(state, hub)
        assert read_hub_state(state) == hub


def test_a_full_state_disk_pauses_the_enforcer_and_the_hub_recovers_when_space_returns(
    tmp_path: Path,
) -> None:
    with mounted_tmpfs(tmp_path / "state", TMPFS_SIZE) as state:
        hub = RunningHub(state, SIGNALHUB_BROKER_STORAGE="memory")
        with hub:
            hub.wait_ready()
            response = hub.ingest(gemeente_records("warm", 5))
            assert response.status_code == 200, response.text
            warm_up = {p["signal_id"] for p in response.json()["published"]}
            _wait(lambda: warm_up <= hub.audited_signal_ids(), 60, "the warm-up audited", hub)

            filler = state / "filler"
            fill(filler)
            filled = time.monotonic()
            with Feeder(hub, "full", batch=10, pause_s=0.5) as feeder:
                exit_s = _wait(
                    lambda: hub.role("enforcer")["last_exit_code"] is not None,
                    EXIT_BOUND_S,
                    "the enforcer to exit on the full disk",
                    hub,
                )
                time.sleep(2.0)  # signals keep coming while it is down
            accepted, refused = feeder.accepted, feeder.refused
            assert accepted, f"no signal accepted on the full disk ({refused}): nothing to test"
            watch = FullDiskWatch()
            _wait(
                lambda: _watch_full_disk(hub, watch),
                RETRIES_BOUND_S,
                f"{CRASH_LOOP_EXITS} exits of the enforcer on the full disk",
                hub,
            )
            full_s = time.monotonic() - filled
            assert set(watch.ready_answers) == {503}, "ready while the enforcer cannot write"
            assert watch.reason_named, "/readyz never said why it is not ready"
            assert "signalhub stopped" not in hub.output
            for name in LOG_ONLY_ROLES:
                role = hub.role(name)
                assert (role["phase"], role["restarts"]) == ("running", 0), role
            on_full_disk = hub.deliveries()
            assert missing_from_vault(hub.settings, on_full_disk) == []

            filler.unlink()
            freed = time.monotonic()
            running_s = _wait(
                lambda: hub.role("enforcer")["phase"] == "running",
                RECOVERY_BOUND_S,
                "the enforcer to run again",
                hub,
            )
            hub.wait_ready(timeout_s=RECOVERY_BOUND_S - running_s)
            ready_s = time.monotonic() - freed
            exits = len(_EXIT_LINE.findall(hub.output))
            published = warm_up | accepted
            _wait(lambda: published <= hub.audited_signal_ids(), 120, "every signal audited", hub)
            audited_s = time.monotonic() - freed
            hub.wait_reconciled(timeout_s=120)
            assert len(_EXIT_LINE.findall(hub.output)) == exits, "no exit once space was back"
            assert hub.role("enforcer")["phase"] == "running"

            deliveries = hub.deliveries(signal_ids=accepted)
            assert {d.signal_id for d in deliveries} & accepted, "signals of the full disk went out"
            assert any(delivered_pseudonyms(d) for d in deliveries), "pseudonyms were delivered"
            assert missing_from_vault(hub.settings, deliveries) == []
            causes = (state / "logs" / "enforcer.log").read_text(errors="replace")
            print(
                f"\nenforcer.log names the cause {causes.count('vault write failed')} times; "
                f"full disk: {len(accepted)} signals accepted, {len(refused)} batches refused "
                f"({sorted(set(refused))}); "
                f"enforcer exited 74 after {exit_s:.1f} s, {watch.enforcer_exits} times in "
                f"{full_s:.1f} s; {len(on_full_disk)} deliveries meanwhile, all in the vault\n"
                f"space back: enforcer running after {running_s:.1f} s, /readyz 200 after "
                f"{ready_s:.1f} s, every accepted signal audited after {audited_s:.1f} s"
            )
        assert hub.process is not None
        assert hub.process.returncode == 0, hub.output
