"""The decision model: what the enforcer asks the policy, and what an answer must look like.

Pure data and checks, no engine: the embedded engine, the OPA-server backend and the memo all
build their input with :func:`build_input` and turn the policy's answer into :class:`Decision`
values with :func:`parse_decisions`. That check fails closed: an answer that is not an object,
misses a requested subscription or holds a malformed entry raises
:class:`~signalhub.errors.PolicyError`, which the enforcer turns into a deny (and parks the signal).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from signalhub.errors import PolicyError
from signalhub.types import JSON

__all__ = [
    "ENVELOPE_TIMES",
    "GENERALISATIONS",
    "TIME_GENERALISATIONS",
    "Decision",
    "build_input",
    "parse_decisions",
    "subscription_ids",
]

#: A pseudonym domain names a key derivation; keep it to a safe alphabet.
_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: How a field may be generalised (signalhub.enforcer.generalise implements them).
GENERALISATIONS = frozenset({"age_band", "postcode_area", "neighbourhood"})
#: What an envelope timestamp may be generalised to (signalhub.enforcer.envelope cuts it); the
#: first is what it gets when the decision says nothing.
TIME_GENERALISATIONS = ("day", "hour")
#: The envelope timestamps a decision names as ``envelope.<field>`` in fields and generalise.
ENVELOPE_TIMES = frozenset({"envelope.observed_at", "envelope.registered_at"})


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one subscription, stamped with the policy version that made it."""

    allow: bool
    fields: tuple[str, ...]
    pseudonymise: tuple[str, ...]
    reasons: tuple[str, ...]
    policy_version: str
    domain: str
    legal_basis: str
    #: Fields delivered generalised instead of in clear: {field: "age_band" | "postcode_area" |
    #: "neighbourhood"} (optional in the policy's answer; see docs/pseudonymisation.md).
    generalise: Mapping[str, str] = field(default_factory=dict, hash=False)


def build_input(
    signal_type: str,
    source_agency: str,
    attributes: Mapping[str, JSON],
    subscriptions: Iterable[Mapping[str, Any]],
    today: date,
) -> JSON:
    """The policy input for one signal and the active subscriptions of its type.

    Only ``id``, ``subscriber``, ``purpose`` and ``legal_basis`` of each subscription go in,
    sorted by id, so that identical situations give identical inputs (and memo hits).
    ``attributes`` must already be the policy attributes (no personal data).
    """
    subs = sorted(
        (
            {
                "id": str(sub["id"]),
                "subscriber": str(sub["subscriber"]),
                "purpose": str(sub["purpose"]),
                "legal_basis": str(sub["legal_basis"]),
            }
            for sub in subscriptions
        ),
        key=lambda sub: sub["id"],
    )
    return {
        "signal": {"type": signal_type, "source": source_agency, "attributes": dict(attributes)},
        "subscriptions": subs,
        "now": today.isoformat(),
    }


def subscription_ids(policy_input: JSON) -> list[str]:
    """The subscription ids the input asks about; :class:`PolicyError` when it has none."""
    try:
        return [str(sub["id"]) for sub in policy_input["subscriptions"]]
    except (KeyError, TypeError) as exc:
        raise PolicyError("policy input has no subscriptions list with ids") from exc


def parse_decisions(result: JSON, ids: Iterable[str], version: str) -> dict[str, Decision]:
    """Check the policy's answer and turn it into :class:`Decision` values, one per id.

    The answer must be an object holding a well-formed entry for every requested subscription id;
    entries for ids not asked about are ignored. A deny never carries fields.
    """
    if not isinstance(result, dict):
        raise PolicyError(f"policy returned {type(result).__name__}, expected an object")
    decisions: dict[str, Decision] = {}
    for sub_id in ids:
        entry = result.get(sub_id)
        if entry is None:
            raise PolicyError(f"policy returned no decision for subscription {sub_id}")
        decisions[sub_id] = _parse_entry(sub_id, entry, version)
    return decisions


def _parse_entry(sub_id: str, entry: JSON, version: str) -> Decision:
    if not isinstance(entry, dict):
        raise PolicyError(f"decision for subscription {sub_id} is not an object")
    allow = entry.get("allow")
    domain = entry.get("domain")
    legal_basis = entry.get("legal_basis")
    if not isinstance(allow, bool):
        raise PolicyError(f"decision for subscription {sub_id}: allow is not a boolean")
    if not isinstance(domain, str) or not isinstance(legal_basis, str):
        raise PolicyError(f"decision for subscription {sub_id}: domain/legal_basis not strings")
    fields = _strings(sub_id, entry, "fields")
    pseudonymise = _strings(sub_id, entry, "pseudonymise")
    reasons = _strings(sub_id, entry, "reasons")
    if allow:
        if not _DOMAIN.match(domain):
            raise PolicyError(f"decision for subscription {sub_id}: invalid pseudonym domain")
        if set(fields) & set(pseudonymise):
            raise PolicyError(
                f"decision for subscription {sub_id}: a field is both clear and pseudonymised"
            )
    generalise = _generalise(sub_id, entry) if allow else {}
    if set(generalise) & set(pseudonymise):
        raise PolicyError(
            f"decision for subscription {sub_id}: a field is both generalised and pseudonymised"
        )
    if not allow:
        fields, pseudonymise = (), ()
    return Decision(allow, fields, pseudonymise, reasons, version, domain, legal_basis, generalise)


def _generalise(sub_id: str, entry: Mapping[str, JSON]) -> dict[str, str]:
    """The optional ``generalise`` object: field -> one of :data:`GENERALISATIONS`."""
    value = entry.get("generalise", {})
    if not isinstance(value, dict) or not all(
        _known_generalisation(str(name), method) for name, method in value.items()
    ):
        raise PolicyError(
            f"decision for subscription {sub_id}: generalise is not an object of "
            f"field -> {' | '.join(sorted(GENERALISATIONS))} (envelope timestamps: "
            f"{' | '.join(TIME_GENERALISATIONS)})"
        )
    return {str(name): str(method) for name, method in sorted(value.items())}


def _known_generalisation(name: str, method: JSON) -> bool:
    if name in ENVELOPE_TIMES:
        return method in TIME_GENERALISATIONS
    return isinstance(method, str) and method in GENERALISATIONS


def _strings(sub_id: str, entry: Mapping[str, JSON], key: str) -> tuple[str, ...]:
    value = entry.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"decision for subscription {sub_id}: {key} is not a list of strings")
    return tuple(value)
