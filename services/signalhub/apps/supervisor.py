"""``signalhub up``: start every role as its own process, keep them running, tell the truth.

Each role (:mod:`signalhub.apps.roles`) runs as ``signalhub run ROLE`` with its log in
``<state_dir>/logs/ROLE.log``. The supervisor:

* restarts a role that exits, after a backoff that doubles from 1 s to 30 s (back to the
  shortest once a role ran for a minute), with one line per restart and a restart count in
  ``/metrics``;
* stops the hub when a role exits :data:`CRASH_LOOP_EXITS` times within
  :data:`CRASH_LOOP_WINDOW_S`, printing the end of that role's log, because restarting it
  again would only hide the cause (a wrong setting, an unreachable OPA server). Two kinds of
  exit do not count: a client's while the broker is down, and a role's that could not write
  the state directory (exit code 74: disk full, read-only), which is retried until space
  returns, with ``/readyz`` saying why meanwhile;
* when the broker restarts or comes back without the hub's epoch record
  (:mod:`signalhub.broker.epoch`): refuses ingest meanwhile (503 with the reason), creates every
  topic with its partition count, puts the policy version in force back, restarts every client
  role, and records the window that may be lost (``signalhub audit reconcile`` names it);
* writes all of it to ``<state_dir>/hub.json`` twice a second, for ``/readyz`` and ``status``.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from signalhub.apps.hub_state import STALE_S, HubState, RoleState, read_hub_state, write_hub_state
from signalhub.apps.roles import CLIENT_ROLES, ROLES, hub_topics
from signalhub.apps.stack import RoleProcess
from signalhub.broker.admin import create_topics
from signalhub.broker.connect import ADVERTISED_BROKER_FILE, advertised_broker
from signalhub.broker.embedded import free_port, port_open
from signalhub.broker.epoch import EPOCH_FILE, check_epoch, read_epoch
from signalhub.broker.incidents import BrokerIncident, record_incident
from signalhub.broker.probe import check_reachable
from signalhub.config import Settings, settings_env
from signalhub.errors import BrokerError, SignalhubError, StateWriteError
from signalhub.policy.lifecycle import restore_policy_in_force

__all__ = ["CRASH_LOOP_EXITS", "CRASH_LOOP_WINDOW_S", "HubStoppedError", "Supervisor"]

logger = logging.getLogger(__name__)
Echo = Callable[[str], None]

CRASH_LOOP_EXITS = 5
CRASH_LOOP_WINDOW_S = 120.0
#: A role that ran this long before it exited starts its backoff again from the shortest.
STABLE_S = 60.0
MAX_BACKOFF_S = 30.0
#: A role counts as running (not starting) once its process has lived this long...
STARTING_S = 2.0
#: ...or this long after it exited twice in a row, or could not write its state.
PROVING_S = 20.0
BROKER_START_S = 60.0
READY_WAIT_S = 120.0
#: How often the broker is asked whether it still holds the hub's epoch record.
EPOCH_CHECK_S = 10.0
_TICK_S = 0.5


class HubStoppedError(SignalhubError):
    """The supervisor gave up (a crash loop, or a role that could not start at all)."""


@dataclass
class _Role:
    process: RoleProcess
    state: RoleState
    exits: collections.deque[float] = field(default_factory=collections.deque)
    failures_in_row: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0


class Supervisor:
    """Runs the hub's roles until SIGINT/SIGTERM; :meth:`run` returns the exit code of ``up``."""

    def __init__(self, settings: Settings, echo: Echo) -> None:
        self._settings = settings
        self._echo = echo
        self._stop = threading.Event()
        self._embedded = settings.embedded
        port = settings.embedded_broker_port or free_port()
        self._bootstrap = f"127.0.0.1:{port}" if self._embedded else settings.bootstrap_servers
        env = settings_env(settings) | {"SIGNALHUB_EMBEDDED_BROKER_PORT": str(port)}
        logs = settings.state_dir / "logs"
        self._roles: dict[str, _Role] = {}
        for name in ROLES if self._embedded else CLIENT_ROLES:
            bootstrap = "" if name == "broker" else self._bootstrap
            process = RoleProcess(name, bootstrap, logs / f"{name}.log", env)
            self._roles[name] = _Role(process, RoleState(name))
        self._state = HubState([role.state for role in self._roles.values()])
        self._last_verified = _previous_check(settings)
        self._next_epoch_check = 0.0
        self._epoch: str | None = None
        #: Why the hub is reconnecting to its broker (ingest is refused meanwhile), or None.
        self._recovery: str | None = None
        self._announced = False
        self._started = time.monotonic()

    def run(self) -> int:
        """Start everything, supervise until stopped; 0 after a stop, 1 when the hub gave up."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self._stop.set())
        try:
            if self._embedded:
                self._start_broker(first=True)
            else:  # an external Kafka that refuses us: say why now, not after a crash loop
                check_reachable(self._bootstrap)
            self._prepare_broker()
            for name in CLIENT_ROLES:
                self._start(name)
            self._accept()
            while not self._stop.wait(_TICK_S):
                self._tick()
            return 0
        except HubStoppedError as exc:
            self._echo(f"signalhub stopped: {exc}")
            return 1
        finally:
            self._refuse("the hub is stopping")
            self._stop_all()
            for role in self._roles.values():
                role.state.phase = "stopped"
                role.state.pid = None
            self._write()

    # -- one round of supervision ----------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        for name, role in self._roles.items():
            alive = role.process.running
            if role.state.phase in ("starting", "running") and not alive:
                self._exited(name, role, now)
            elif role.state.phase == "starting" and now - role.started_at >= self._proof_s(role):
                role.state.phase = "running"
            if role.state.phase != "restarting" or now < role.restart_at:
                continue
            if name == "broker":
                self._start_broker()
            elif not self._broker_down():  # clients wait for the broker (and restart with it)
                self._start(name)
        broker = self._roles.get("broker")
        if self._recovery is not None and (broker is None or broker.process.running):
            self._recover(self._recovery)
        if now >= self._next_epoch_check:
            self._next_epoch_check = now + EPOCH_CHECK_S
            self._check_broker_still_ours()
        self._announce_when_ready(now)
        self._write()

    def _exited(self, name: str, role: _Role, now: float) -> None:
        code = role.process.exit_code
        ran_s = now - role.started_at
        # A client that lost its broker is not crash-looping, and a role that cannot write its
        # state (disk full, read-only) is waited for: it runs again once space returns.
        state_unwritable = code == StateWriteError.exit_code
        if not self._broker_down() and not state_unwritable:
            role.exits.append(now)
        while role.exits and role.exits[0] < now - CRASH_LOOP_WINDOW_S:
            role.exits.popleft()
        role.failures_in_row = 0 if ran_s >= STABLE_S else role.failures_in_row + 1
        role.state.last_exit_code = code
        role.state.pid = None
        if len(role.exits) >= CRASH_LOOP_EXITS:
            raise HubStoppedError(
                f"the {name} role exited {len(role.exits)} times within "
                f"{CRASH_LOOP_WINDOW_S:.0f} s (last exit code {code}); restarting it again would "
                f"hide the cause. Its log ({role.process.log_path}) ends with:\n"
                f"{role.process.log_tail()}\nFix the cause, then run `signalhub up` again."
            )
        delay = min(MAX_BACKOFF_S, 2.0 ** max(0, role.failures_in_row - 1))
        role.restart_at = now + delay
        role.state.phase = "restarting"
        role.state.detail = f"exited with code {code} after {ran_s:.0f} s" + (
            ": it cannot write the state directory (disk full or read-only?)"
            if state_unwritable
            else ""
        )
        self._say(
            f"role {name} {role.state.detail}; restart "
            f"{role.state.restarts + 1} in {delay:.1f} s (log: {role.process.log_path})"
        )
        if name == "broker":
            self._refuse("the broker is down and being restarted; retry in a few seconds")
            self._recovery = "the broker restarted"
            self._stop_clients_with_the_broker()

    # -- roles ------------------------------------------------------------------------------

    def _start(self, name: str, detail: str = "") -> None:
        role = self._roles[name]
        if role.started_at:
            role.state.restarts += 1
        role.process.start()
        role.started_at = time.monotonic()
        role.state.phase = "starting"
        role.state.pid = role.process.pid
        role.state.since = time.time()
        role.state.detail = detail

    def _restart_clients(self) -> None:
        for name in CLIENT_ROLES:
            self._roles[name].process.terminate()
        for name in CLIENT_ROLES:
            self._roles[name].process.stop()
        for name in CLIENT_ROLES:
            self._start(name, "restarted after the broker restarted")

    @staticmethod
    def _proof_s(role: _Role) -> float:
        """How long a started role must live before it counts as running.

        A role that keeps exiting, or that could not write its state, has to show for longer
        that it stays up, so that /readyz does not flash 200 between its restarts.
        """
        keeps_failing = role.failures_in_row >= 2
        if keeps_failing or role.state.last_exit_code == StateWriteError.exit_code:
            return PROVING_S
        return STARTING_S

    def _stop_clients_with_the_broker(self) -> None:
        """SIGKILL every client role the moment the broker is gone, before it comes back.

        A graceful stop would let faust commit offsets of signals whose outputs the dead broker
        never acknowledged; killed, the enforcer commits nothing and the restarted one
        re-processes from the last commit (the same delivery and decision ids).
        """
        for name in CLIENT_ROLES:
            role = self._roles[name]
            role.process.kill()
            role.state.phase = "stopped"
            role.state.pid = None
            role.state.detail = "stopped with the broker; restarts when it is back"

    def _broker_down(self) -> bool:
        broker = self._roles.get("broker")
        down = broker is not None and broker.state.phase != "running"
        return down or self._recovery is not None

    def _stop_all(self) -> None:
        broker = self._roles.get("broker")
        if broker is not None and not broker.process.running:
            # Nothing can be committed to a broker that is gone, and a graceful faust stop
            # would wait out its whole grace period for it.
            for name in CLIENT_ROLES:
                self._roles[name].process.kill()
        for name in reversed(CLIENT_ROLES):
            self._roles[name].process.terminate()
        for name in reversed(list(self._roles)):
            self._roles[name].process.stop()

    # -- the broker -------------------------------------------------------------------------

    def _start_broker(self, *, first: bool = False) -> None:
        """Start the broker role and wait until it advertises its address and answers."""
        role = self._roles["broker"]
        (self._settings.state_dir / ADVERTISED_BROKER_FILE).unlink(missing_ok=True)  # a killed
        self._start("broker")  # broker role leaves its advertisement behind
        deadline = time.monotonic() + BROKER_START_S
        host, _, port = self._bootstrap.rpartition(":")
        while time.monotonic() < deadline and not self._stop.is_set():
            if not role.process.running:
                if first:
                    raise HubStoppedError(
                        f"the embedded broker could not start (exit code "
                        f"{role.process.exit_code}). Its log ({role.process.log_path}) ends "
                        f"with:\n{role.process.log_tail()}"
                    )
                return  # the next tick sees the exit and backs off
            if advertised_broker(self._settings) == self._bootstrap and port_open(host, int(port)):
                role.state.phase = "running"  # it answers: no need to wait out STARTING_S
                return
            time.sleep(0.1)
        if not self._stop.is_set():
            raise HubStoppedError(
                f"the embedded broker did not answer within {BROKER_START_S:.0f} s"
            )

    def _recover(self, why: str) -> None:
        """After a broker restart or loss: epoch, topics, policy, then fresh clients.

        Until this succeeds ingest is refused; a broker that does not answer yet is tried again
        on the next tick.
        """
        self._recovery = why
        self._refuse(f"{why}; the hub is reconnecting")
        self._write()
        try:
            self._prepare_broker()
        except BrokerError as exc:
            logger.warning("the broker does not answer yet (%s); trying again", exc)
            return
        self._say(f"{why}: restarting every role's Kafka clients")
        self._restart_clients()
        self._recovery = None
        self._accept()

    def _prepare_broker(self) -> None:
        """Epoch check, every topic with its partition count, the policy version in force."""
        settings = self._settings
        check = check_epoch(self._bootstrap, settings.state_dir)
        self._epoch = check.epoch
        now = time.time()
        if check.lost:
            incident = BrokerIncident(
                since=self._last_verified,
                detected_at=now,
                detail=f"the broker no longer holds epoch {check.previous}",
            )
            record_incident(settings.state_dir, incident)
            self._state.incidents.append(incident)
            self._say(
                f"WARNING {incident.describe()}: signals not yet enforced, deliveries not yet "
                "read and audit records not yet ingested from that window may be gone — "
                "`signalhub audit reconcile` names it"
            )
        by_count: dict[int, list[str]] = {}
        for topic, partitions in hub_topics(settings).items():
            by_count.setdefault(partitions, []).append(topic)
        for partitions, topics in by_count.items():
            create_topics(self._bootstrap, topics, partitions=partitions)
        restored = restore_policy_in_force(settings, self._bootstrap)
        if restored is not None:
            self._say(f"policy {restored} (last published) put back in force")
        self._last_verified = now

    def _check_broker_still_ours(self) -> None:
        if self._broker_down():
            return
        try:
            found = read_epoch(self._bootstrap)
        except BrokerError as exc:
            self._refuse(f"the broker does not answer: {exc}")
            return
        if found == self._epoch:
            self._last_verified = time.time()
            if self._state.refusal.startswith("the broker does not answer"):
                self._accept()
            return
        self._recover("the broker came back without the hub's data")

    # -- what the hub tells ----------------------------------------------------------------

    def _accept(self) -> None:
        self._state.accepting = True
        self._state.refusal = ""
        self._write()

    def _refuse(self, reason: str) -> None:
        self._state.accepting = False
        self._state.refusal = reason

    def _write(self) -> None:
        try:
            write_hub_state(self._settings.state_dir, self._state)
        except OSError as exc:
            logger.warning("cannot write the hub state: %s", exc)

    def _announce_when_ready(self, now: float) -> None:
        if self._announced:
            return
        settings = self._settings
        base = f"http://{settings.http_host}:{settings.http_port}"
        try:
            response = httpx.get(f"{base}/readyz", timeout=2.0)
            ready, body = response.status_code == 200, response.json()
        except (httpx.HTTPError, ValueError):
            ready, body = False, {}
        if ready:
            self._announced = True
            self._echo(
                f"signalhub is up and ready: Kafka at {self._bootstrap}, console at "
                f"{base}/console/, ingest at {base}/ingest/<agency> — Ctrl-C stops everything."
                + self._first_user_hint()
            )
        elif now - self._started > READY_WAIT_S:
            self._announced = True
            failing = [
                f"{check['name']}: {check['detail']}"
                for check in body.get("checks", [])
                if not check.get("ok")
            ]
            self._echo(
                f"signalhub is running but NOT READY after {READY_WAIT_S:.0f} s: "
                + ("; ".join(failing) or f"nothing answers at {base}/readyz")
                + " — `signalhub status` shows the checks"
            )

    def _first_user_hint(self) -> str:
        from signalhub.console.auth import UserStore

        if UserStore.in_state_dir(self._settings.state_dir).list():
            return ""
        return (
            "\n  no console user yet — create the first one with: "
            f"SIGNALHUB_STATE_DIR={self._settings.state_dir} "
            "signalhub console user add NAME --role operator"
        )

    def _say(self, line: str) -> None:
        """One timestamped line on ``up``'s output (the operator's terminal or service log)."""
        self._echo(f"{time.strftime('%H:%M:%S')} {line}")


def _previous_check(settings: Settings) -> float:
    """When the broker was last known to hold the hub's data (a previous run's last word)."""
    previous = read_hub_state(settings.state_dir)
    if previous is not None:
        return previous.updated_at
    try:
        return (settings.state_dir / EPOCH_FILE).stat().st_mtime
    except OSError:
        return time.time() - STALE_S
