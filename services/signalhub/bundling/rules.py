"""The bundling rules and the hit/no-hit permission, asked of the policy (``signalhub.bundling``).

The rules are the security officers' (policies/signalhub/bundling/bundling.rego with its data in
policies/data/bundling_rules.json); this module only builds their input from a bundle and checks
the answer. The input holds no personal data: per signal only the agency, the type and the day
(counted from the bundle's first signal), plus whether the bundle is about an address whose
signals all name one person. Evaluated on the same embedded OPA engine that makes the sharing
decisions, so the policy version on an alert is the one the enforcer reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from signalhub.bundling.store import Contribution
from signalhub.errors import PolicyError
from signalhub.types import JSON

__all__ = [
    "DECISION_DOCUMENT",
    "HIT_NO_HIT_DOCUMENT",
    "BundlingPolicy",
    "DocumentEngine",
    "RuleDecision",
    "bundle_input",
]

DECISION_DOCUMENT = "signalhub.bundling.decision"
HIT_NO_HIT_DOCUMENT = "signalhub.bundling.hit_no_hit"
_DAY_MS = 86_400_000


class DocumentEngine(Protocol):
    """An engine that evaluates a named policy document (EmbeddedPolicyEngine.evaluate)."""

    @property
    def version(self) -> str: ...

    def evaluate(self, document: str, policy_input: JSON) -> JSON: ...


@dataclass(frozen=True)
class RuleDecision:
    """Whether a bundle fires, which rule, why, and under which policy version."""

    fire: bool
    rule: str
    reasons: tuple[str, ...]
    policy_version: str


def bundle_input(kind: str, contributions: Sequence[Contribution]) -> JSON:
    """The policy input for one bundle: agency, type and relative day per signal."""
    first = min((c.observed_ms for c in contributions), default=0)
    persons = {c.person for c in contributions}
    return {
        "bundle": {
            "kind": kind,
            "one_person": len(persons) == 1 and None not in persons,
            "contributions": [
                {
                    "agency": c.agency,
                    "type": c.signal_type,
                    "day": (c.observed_ms - first) // _DAY_MS,
                }
                for c in contributions
            ],
        }
    }


class BundlingPolicy:
    """Asks the loaded policy about bundles and hit/no-hit questions; fails closed."""

    def __init__(self, engine: DocumentEngine) -> None:
        self._engine = engine

    @property
    def version(self) -> str:
        return self._engine.version

    def decide(self, kind: str, contributions: Sequence[Contribution]) -> RuleDecision:
        result = self._engine.evaluate(DECISION_DOCUMENT, bundle_input(kind, contributions))
        if not isinstance(result, dict) or not isinstance(result.get("fire"), bool):
            raise PolicyError(f"data.{DECISION_DOCUMENT} did not return {{fire: bool, ...}}")
        rule = result.get("rule", "")
        return RuleDecision(
            bool(result["fire"]), str(rule), _strings(result.get("reasons")), self.version
        )

    def may_ask(self, asker: str) -> tuple[bool, tuple[str, ...]]:
        """Whether ``asker`` may ask a hit/no-hit question, with the policy's reasons."""
        result = self._engine.evaluate(HIT_NO_HIT_DOCUMENT, {"asker": asker})
        if not isinstance(result, dict) or not isinstance(result.get("allow"), bool):
            raise PolicyError(f"data.{HIT_NO_HIT_DOCUMENT} did not return {{allow: bool, ...}}")
        return bool(result["allow"]), _strings(result.get("reasons"))


def _strings(value: JSON) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PolicyError("bundling policy: reasons is not a list")
    return tuple(str(item) for item in value)
