"""Who publishes which signal type: the agencies of the connectors, and the hub's own alerts.

The policy may decide on a signal's source agency, so what it does is only known per publisher:
the enforcer warms its decision memo with these, and the who-sees-what matrix evaluates each.
"""

from __future__ import annotations

from pathlib import Path

from signalhub.bundling.core import ALERT_TYPE, HUB_AGENCY
from signalhub.connector.definition import load_definitions

__all__ = ["publishing_agencies"]


def publishing_agencies(connectors_dir: Path) -> dict[str, list[str]]:
    """``{signal type: [agency, ...]}`` for every connector definition, plus the bundler's
    casework alerts (published by the hub itself)."""
    agencies: dict[str, list[str]] = {ALERT_TYPE: [HUB_AGENCY]}
    for definition in load_definitions(connectors_dir).values():
        for signal_type in definition.signal_types():
            publishers = agencies.setdefault(signal_type, [])
            if definition.agency not in publishers:
                publishers.append(definition.agency)
    return agencies
