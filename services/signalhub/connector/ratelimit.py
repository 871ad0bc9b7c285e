"""A sliding-window rate limiter that keeps no address it limits.

Intake from the public is limited per source: the ingest endpoint per token (one per
connector), the meldpunt form per client address. The limiter is the one place that sees that
address, and it keeps only a keyed hash of it (HMAC-SHA-256 under a random key made when the
process starts and never written anywhere), in memory, for as long as the window lasts. A
restart forgets every count; nothing of it reaches a disk, a log or the broker.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most ``limit`` requests per ``window_s`` seconds per key."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._key = secrets.token_bytes(32)
        self._hits: dict[bytes, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, source: str) -> float | None:
        """Count a request from ``source``; None when it may go ahead, else the seconds until
        it may (for ``Retry-After``)."""
        digest = hmac.new(self._key, source.encode("utf-8", "replace"), hashlib.sha256)
        key = digest.digest()[:16]
        now = self._clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                self._make_room(now)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1.0, math.ceil(hits[0] + self.window_s - now))
            hits.append(now)
            return None

    def tracked(self) -> int:
        """How many sources have a count right now (for tests and metrics)."""
        with self._lock:
            return len(self._hits)

    def state(self) -> dict[bytes, list[float]]:
        """A copy of what the limiter holds: hashed keys and request times, nothing else."""
        with self._lock:
            return {key: list(hits) for key, hits in self._hits.items()}

    def _make_room(self, now: float) -> None:
        """Forget sources whose window passed; beyond ``max_keys``, the oldest ones."""
        if len(self._hits) < self._max_keys:
            return
        for key in [
            k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window_s
        ]:
            del self._hits[key]
        while len(self._hits) >= self._max_keys:
            del self._hits[next(iter(self._hits))]
