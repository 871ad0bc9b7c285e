"""The decision memo: each distinct policy input is evaluated once per policy version.

Exact, not a heuristic: a decision is a pure function of its input and the policy version
(DESIGN.md), so an identical input under the same version must get the identical answer. This
is how the enforcer's hot path stays fast.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from signalhub.errors import PolicyError
from signalhub.policy.decision import Decision
from signalhub.policy.engine import PolicyEngine
from signalhub.types import JSON
from signalhub.wire import canonical_json

__all__ = ["MemoisedPolicy"]


class MemoisedPolicy:
    """A :class:`~signalhub.policy.engine.PolicyEngine` that evaluates each distinct input once.

    A bounded LRU keyed by the inner engine's version plus the canonical JSON of the input.
    Errors are never cached. A lock keeps the LRU consistent if ever called from several threads
    (the enforcer uses one).
    """

    def __init__(self, inner: PolicyEngine, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._inner = inner
        self._maxsize = maxsize
        self._cache: OrderedDict[str, dict[str, Decision]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def version(self) -> str:
        return self._inner.version

    def __len__(self) -> int:
        return len(self._cache)

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        key = self._key(policy_input)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return dict(cached)
        decisions = self._inner.decide(policy_input)
        with self._lock:
            self.misses += 1
            self._store(key, decisions)
        return decisions

    def warm(self, inputs: Iterable[JSON], *, keep_going: Callable[[], bool] = lambda: True) -> int:
        """Evaluate ``inputs`` ahead of the signals that will need them; returns how many.

        A miss costs a full OPA evaluation (~1 ms here) and a fresh memo misses on every distinct
        input at first, so warming it from the enumerable input space keeps that cost off the
        stream. Inputs already held are skipped; an input the policy cannot evaluate is left out
        (the signal that needs it fails closed on its own). Stops once ``keep_going()`` is false,
        or when the memo is full. Not counted as hits or misses.
        """
        evaluated = 0
        for policy_input in inputs:
            if not keep_going() or len(self._cache) >= self._maxsize:
                break
            try:
                key = self._key(policy_input)
                if key in self._cache:
                    continue
                decisions = self._inner.decide(policy_input)
            except PolicyError:
                continue
            with self._lock:
                self._store(key, decisions)
            evaluated += 1
        return evaluated

    def _key(self, policy_input: JSON) -> str:
        """The memo key; an input that is not JSON cannot be decided, so it fails closed."""
        try:
            return self._inner.version + "\n" + canonical_json(policy_input)
        except (TypeError, ValueError) as exc:
            raise PolicyError("policy input is not JSON-serialisable") from exc

    def _store(self, key: str, decisions: dict[str, Decision]) -> None:
        self._cache[key] = dict(decisions)
        while len(self._cache) > self._maxsize:
            self._cache.popitem(last=False)
