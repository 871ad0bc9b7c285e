"""What the enforcer's core tells whoever watches it: one summary per source record.

:class:`~signalhub.enforcer.core.Enforcement` fills one :class:`RecordOutcome` while it processes
a record, adds it to its running :class:`Stats` (the worker's per-batch log line) and hands it to
its :class:`EnforcementObserver` (the metrics exporter, :mod:`signalhub.enforcer.metrics`). One
call per record with a compact summary keeps the hot path's cost flat: nothing is counted per
field, and the observer labels and times what it needs without decoding the record again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from signalhub.enforcer.outputs import SourceRecord

__all__ = ["NO_OBSERVER", "EnforcementObserver", "RecordOutcome", "Stats"]


@dataclass(slots=True)
class RecordOutcome:
    """What processing one source record came to.

    ``signal_type``, ``source_agency`` and ``registered_at`` come from the envelope the core
    decoded (never from the payload); they are None when the record was dead-lettered before.
    Decisions are counted per outcome, all made by ``policy_version``.
    """

    signal_type: str | None = None
    source_agency: str = ""
    registered_at: datetime | None = None
    #: The dead-letter reason code, when the record became one.
    dead_letter: str | None = None
    policy_version: str = ""
    allowed: int = 0
    denied: int = 0
    errors: int = 0
    #: Subscribers that got a delivery, and those whose delivery the leak guard stopped.
    delivered: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    #: True when the policy could not decide and the signal was parked.
    parked: bool = False


class EnforcementObserver(Protocol):
    """Told once per source record what the core did and how long it took (seconds)."""

    def processed(self, record: SourceRecord, outcome: RecordOutcome, seconds: float) -> None:
        """Called after the record's outputs are built, before the caller produces them."""


class _NoObserver:
    def processed(self, record: SourceRecord, outcome: RecordOutcome, seconds: float) -> None:
        return None


#: The observer of an enforcement nobody watches.
NO_OBSERVER: EnforcementObserver = _NoObserver()


@dataclass
class Stats:
    """Running totals of what the core did since it started, for the worker's log line."""

    signals: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    blocked: Counter[str] = field(default_factory=Counter)
    parked: int = 0

    def add(self, outcome: RecordOutcome) -> None:
        """Count one record's outcome."""
        if outcome.signal_type is not None:
            self.signals[outcome.signal_type] += 1
        if outcome.dead_letter is not None:
            self.dead_letters[outcome.dead_letter] += 1
        for name, count in (
            ("allow", outcome.allowed),
            ("deny", outcome.denied),
            ("error", outcome.errors),
        ):
            if count:
                self.decisions[name] += count
        for subscriber in outcome.delivered:
            self.deliveries[subscriber] += 1
        for subscriber in outcome.blocked:
            self.blocked[subscriber] += 1
        self.parked += outcome.parked
