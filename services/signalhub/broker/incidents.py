"""Times the broker came back without the hub's data, kept in the state directory for good.

``signalhub up`` appends one line to ``<state_dir>/broker-incidents.jsonl`` when its broker
lost what it held (:mod:`signalhub.broker.epoch` tells), so that ``signalhub audit reconcile``
and ``signalhub status`` can name the window whose records may be gone, long after the run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["INCIDENTS_FILE", "BrokerIncident", "read_incidents", "record_incident"]

INCIDENTS_FILE = "broker-incidents.jsonl"


@dataclass(frozen=True)
class BrokerIncident:
    """The broker came back without the hub's data: what was held since ``since`` may be lost."""

    since: float
    detected_at: float
    detail: str

    def describe(self) -> str:
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        end = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.detected_at))
        return f"broker data lost: records held between {start} and {end} ({self.detail})"


def record_incident(state_dir: Path, incident: BrokerIncident) -> None:
    with (state_dir / INCIDENTS_FILE).open("a", encoding="utf-8") as log:
        log.write(json.dumps(asdict(incident)) + "\n")


def read_incidents(state_dir: Path) -> list[BrokerIncident]:
    """Every broker incident recorded in this state directory, oldest first."""
    try:
        lines = (state_dir / INCIDENTS_FILE).read_text("utf-8").splitlines()
    except OSError:
        return []
    incidents: list[BrokerIncident] = []
    for line in lines:
        try:
            incidents.append(BrokerIncident(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return incidents
