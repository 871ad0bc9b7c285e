"""Do two pseudonym domains share a value in their deliveries of one signal? (tests only)

Used over the enforcer core's output (tests/test_linkability.py) and over ``demo --out``
(tests/test_demo.py). A value two deliveries of one signal in different domains share links
them, unless it is kind-level metadata, a timestamp cut to the day, or a payload field the
policy granted both of them in clear or generalised. A hub id (the leak guard's list of the ids
the hub makes) is never excused by a grant: granted or not, each domain gets its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, time
from typing import Any

from signalhub.enforcer.leak_guard import HUB_IDS

#: (signal id, subscriber) -> the payload paths its decision granted in clear or generalised.
Granted = dict[tuple[str, str], set[str]]

#: Shared by every delivery of every signal of a kind: what kind, from whom, under which terms.
METADATA = {
    "envelope.signal_type",
    "envelope.source_agency",
    "envelope.schema_version",
    "delivery.purpose",
    "delivery.legal_basis",
    "delivery.policy_version",
    "delivery.withheld",
}
#: Also kind-level: ``delivery.generalised`` maps a field to the method its agreement names
#: ("age_band"), the same for every signal delivered under those terms.
METADATA_PREFIXES = ("delivery.generalised.",)
#: May be shared cut to the day (the shipped agreements grant no more): which day, not which
#: signal.
DAY_TIMES = {"envelope.observed_at", "envelope.registered_at"}


def _a_day(value: Any) -> bool:
    """A datetime (or its ISO text) at midnight."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return False
    return isinstance(value, datetime) and value.time() == time(0)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        yield path, tuple(str(item) for item in value)
    elif value is not None:
        yield path, value


def granted_paths(fields_clear: Iterable[str], fields_generalised: Iterable[str]) -> set[str]:
    """An audit row's grants as payload paths (``fields_generalised`` holds ``name=method``)."""
    names = [*fields_clear, *(entry.split("=")[0] for entry in fields_generalised)]
    return {f"payload.{name}" for name in names}


def cross_domain_links(
    deliveries_by_signal: Mapping[str, list[Any]], granted: Granted
) -> tuple[int, list[str], set[str]]:
    """(cross-domain pairs seen, the linking values found, payload paths shared by grant).

    ``deliveries_by_signal`` maps a hub signal id to its delivered records (``{"envelope":
    ..., "delivery": ..., "payload": ...}``, timestamps as datetimes or ISO text).
    """
    pairs = 0
    links: list[str] = []
    granted_to_both: set[str] = set()
    for signal_id, deliveries in deliveries_by_signal.items():
        for first, second in itertools.combinations(deliveries, 2):
            if first["delivery"]["pseudonym_domain"] == second["delivery"]["pseudonym_domain"]:
                continue
            pairs += 1
            names = (first["delivery"]["subscriber"], second["delivery"]["subscriber"])
            both = granted[(signal_id, names[0])] & granted[(signal_id, names[1])]
            theirs = dict(_leaves(second))
            for path, value in _leaves(first):
                if path in METADATA or path.startswith(METADATA_PREFIXES):
                    continue
                if theirs.get(path) != value:
                    continue
                if path in DAY_TIMES and _a_day(value):
                    continue
                if path in both and path not in HUB_IDS:
                    granted_to_both.add(path)
                    continue
                links.append(f"{signal_id}: {path} shared by {names[0]} and {names[1]}")
    return pairs, links, granted_to_both
