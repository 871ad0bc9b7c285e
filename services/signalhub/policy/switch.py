"""Hot switching: the enforcer follows the ``policies`` topic and swaps engines atomically.

:class:`SwitchablePolicy` is the :class:`~signalhub.policy.engine.PolicyEngine` the enforcer holds.
Its engine and that engine's memo live in one object, replaced by one reference assignment, so a
decision is made entirely by the old version or entirely by the new one, and names the version that
made it. :class:`PolicyWatcher` reads the topic's latest ``current`` record at start-up and then
follows it from a daemon thread; each new version is loaded *before* it is swapped in.

A version that cannot be loaded (corrupt record, altered files, a rule that does not compile)
is still the version its publisher put in force, so the hub fails closed: it switches to a
:class:`BrokenPolicy` that denies and parks everything until a fixed version is published. The
alternative — keep deciding with the previous version — could keep disclosing what the new
version was published to withhold.

Each memo put in force is warmed from a daemon thread (``warm_with``: the enumerable policy
inputs), so the first signals after a start or a switch do not each pay a full OPA evaluation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.config import Settings
from signalhub.errors import PolicyError, SignalhubError
from signalhub.policy.bundle import PolicyBundle, bundle_from_dir
from signalhub.policy.decision import Decision
from signalhub.policy.engine import EmbeddedPolicyEngine, PolicyEngine
from signalhub.policy.memo import MemoisedPolicy
from signalhub.policy.opa_backend import OpaServerPolicyEngine, opa_client_for, upload_policy
from signalhub.policy.store import (
    CURRENT_KEY,
    create_policies_topic,
)
from signalhub.types import JSON
from signalhub.wire import POLICIES_TOPIC

__all__ = [
    "BrokenPolicy",
    "PolicyWatcher",
    "SwitchablePolicy",
    "engine_for_bundle",
    "engine_from_settings",
]

logger = logging.getLogger(__name__)

#: Memo entries per version (distinct policy inputs are few: types x attribute combinations).
MEMO_SIZE = 4096


class SwitchablePolicy:
    """The policy in force, replaceable while decisions are being made.

    ``warm_with`` gives the policy inputs to evaluate ahead of the stream; each memo put in force
    is warmed from them on a daemon thread (the OPA call releases the GIL, and the engine
    serialises its evaluations, so this is safe while the enforcer decides). A warm-up stops
    when its memo is replaced.
    """

    def __init__(
        self,
        engine: PolicyEngine,
        *,
        memo_size: int = MEMO_SIZE,
        warm_with: Callable[[], Iterable[JSON]] | None = None,
    ) -> None:
        self._memo_size = memo_size
        self._warm_with = warm_with
        self._fails_closed = isinstance(engine, BrokenPolicy)
        self._active = MemoisedPolicy(engine, memo_size)
        self._warming: threading.Thread | None = None
        self._warm(self._active)

    @property
    def version(self) -> str:
        return self._active.version

    @property
    def active(self) -> MemoisedPolicy:
        """The memoised engine deciding now (for its hit/miss counters)."""
        return self._active

    @property
    def fails_closed(self) -> bool:
        """True while the version in force could not be loaded, so every signal is parked."""
        return self._fails_closed

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        active = self._active  # read once: the whole decision comes from one version
        return active.decide(policy_input)

    def switch(self, engine: PolicyEngine) -> None:
        """Put ``engine`` in force with a fresh memo, as one reference swap."""
        self._fails_closed = isinstance(engine, BrokenPolicy)
        self._active = MemoisedPolicy(engine, self._memo_size)
        self._warm(self._active)

    def wait_warm(self, timeout_s: float | None = None) -> bool:
        """Block until the latest warm-up ended (True), or ``timeout_s`` passed (False)."""
        warming = self._warming
        if warming is not None:
            warming.join(timeout_s)
        return warming is None or not warming.is_alive()

    def _warm(self, memo: MemoisedPolicy) -> None:
        if self._warm_with is None:
            return
        inputs = self._warm_with

        def run() -> None:
            try:
                count = memo.warm(inputs(), keep_going=lambda: self._active is memo)
            except Exception:  # a warm-up is an optimisation: a failure must not stop anything
                logger.exception("warming the policy memo failed; decisions are unaffected")
                return
            logger.info("policy %s: memo warmed with %d inputs", memo.version, count)

        self._warming = threading.Thread(target=run, name="signalhub-policy-warm", daemon=True)
        self._warming.start()


class BrokenPolicy:
    """The version in force could not be loaded: every decision fails, so signals are parked."""

    def __init__(self, version: str, problem: str) -> None:
        self.version = version
        self._problem = problem

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        raise PolicyError(
            f"policy version {self.version} could not be loaded ({self._problem}) — "
            "publish a fixed version, then run `signalhub policy retry-parked`"
        )


def engine_for_bundle(settings: Settings, bundle: PolicyBundle) -> PolicyEngine:
    """An engine deciding with ``bundle`` on the configured backend; :class:`PolicyError` if not.

    The engine stamps ``bundle.version`` as it is: pass a bundle made from files, or one
    :meth:`~signalhub.policy.bundle.PolicyBundle.verified` after reading it back.
    """
    if settings.policy_engine == "server":
        client = opa_client_for(settings.opa_url, timeout_s=settings.opa_timeout_s)
        upload_policy(client, bundle.files)
        return OpaServerPolicyEngine(client, bundle.version)
    return EmbeddedPolicyEngine.from_bundle(bundle)


def engine_from_settings(settings: Settings) -> PolicyEngine:
    """The engine for the files in ``policies/`` (the fallback when nothing was published)."""
    return engine_for_bundle(settings, bundle_from_dir(settings.policies_dir))


class PolicyWatcher:
    """Follows the ``policies`` topic and switches :class:`SwitchablePolicy` to each new version."""

    def __init__(
        self,
        settings: Settings,
        bootstrap_servers: str,
        policy: SwitchablePolicy,
        *,
        poll_ms: int = 200,
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap_servers
        self._policy = policy
        self._poll_ms = poll_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._broken = False
        self.switches = 0

    def catch_up(self, *, idle_ms: int = 500) -> str:
        """Apply the latest published version, if any; returns the version now in force."""
        create_policies_topic(self._bootstrap)
        self._consumer = open_consumer(self._bootstrap, client_id="signalhub-policy-watch")
        assign_topic(self._consumer, POLICIES_TOPIC)
        latest: bytes | None = None
        for record in drain(self._consumer, idle_ms=idle_ms):
            if record.key == CURRENT_KEY and record.value is not None:
                latest = record.value
        if latest is not None:
            self.apply(latest)
        else:
            logger.info("no published policy on %s: deciding with policies/", POLICIES_TOPIC)
        return self._policy.version

    def apply(self, raw: bytes) -> None:
        """Load the bundle in ``raw`` and switch to it (or to a :class:`BrokenPolicy`)."""
        try:
            bundle = PolicyBundle.from_bytes(raw)
        except PolicyError as exc:
            self._policy.switch(BrokenPolicy("unreadable", str(exc)))
            self._broken = True
            logger.error("%s: unreadable policy record, failing closed: %s", POLICIES_TOPIC, exc)
            self.switches += 1
            return
        if bundle.version == self._policy.version and not self._broken:
            return
        try:
            engine = engine_for_bundle(self._settings, bundle.verified())
        except SignalhubError as exc:
            self._policy.switch(BrokenPolicy(bundle.version, str(exc)))
            self._broken = True
            logger.error("policy %s cannot be loaded, failing closed: %s", bundle.version, exc)
        else:
            self._policy.switch(engine)
            self._broken = False
            logger.warning("policy %s in force (%s)", bundle.version, bundle.message)
        self.switches += 1

    def start(self) -> PolicyWatcher:
        """Follow the topic from a daemon thread (after :meth:`catch_up`)."""
        if self._consumer is None:
            self.catch_up()
        self._thread = threading.Thread(
            target=self._run, name="signalhub-policy-watcher", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._consumer.poll(timeout_ms=self._poll_ms)
            except Exception:  # the edge: log and keep following; the old version stays
                logger.exception("policy watcher: poll failed")
                self._stop.wait(1.0)
                continue
            latest: bytes | None = None
            for records in batch.values():
                for record in records:
                    if record.key == CURRENT_KEY and record.value is not None:
                        latest = record.value
            if latest is not None:
                self.apply(latest)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
