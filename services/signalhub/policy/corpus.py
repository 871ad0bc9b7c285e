"""A corpus of policy inputs that walks every policy attribute: the ground for matrix and checks.

The policy sees only a handful of attributes per signal type (enums, small ints, booleans, the
derived age band). Enumerating them — every enum symbol, a few probe numbers, true/false/unknown,
every age band and an unknown age — gives a finite set of inputs on which two policies, two
engines or a memoised and a plain engine can be compared decision by decision, and from which the
who-sees-what matrix is derived by *evaluating* the policy rather than by reading its data.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from signalhub.errors import PolicyError
from signalhub.policy.decision import build_input
from signalhub.policy.engine import PolicyEngine
from signalhub.schema.registry import SchemaRegistry, SignalSchema
from signalhub.subscriptions import Subscription
from signalhub.types import JSON

__all__ = ["AGE_BANDS", "CorpusCase", "attribute_space", "compare_engines", "policy_corpus"]

AGE_BANDS: tuple[str, ...] = ("0-11", "12-17", "18-22", "23-64", "65+")
_MINOR_BANDS = frozenset({"0-11", "12-17"})
#: Probe values for integer attributes: around every small threshold, and two large ones; 16 is
#: the leerplicht reporting threshold (hours absent in four weeks) an agreement conditions on.
INT_PROBES: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 12, 16)
#: A type with more combinations than this is sampled (deterministically).
MAX_CASES_PER_TYPE = 2000
#: The source agency put in corpus inputs (the shipped policy does not condition on it).
CORPUS_SOURCE = "gemeente"


@dataclass(frozen=True)
class CorpusCase:
    """One input of the corpus: a signal type, its attributes and the input built from them."""

    signal_type: str
    attributes: Mapping[str, JSON]
    policy_input: JSON


def _values(avro_type: JSON) -> list[JSON]:
    """The probe values of one attribute's Avro type (None included for an optional one)."""
    values: list[JSON] = []
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    for branch in branches:
        kind = branch.get("type") if isinstance(branch, dict) else branch
        if branch == "null":
            values.append(None)
        elif kind == "enum" and isinstance(branch, dict):
            values.extend(branch["symbols"])
        elif kind == "boolean":
            values.extend([True, False])
        elif kind in ("int", "long"):
            values.extend(INT_PROBES)
        else:
            values.append(None)  # free strings etc.: the policy cannot rely on their values
    return list(dict.fromkeys(values))


def attribute_space(schema: SignalSchema) -> list[dict[str, JSON]]:
    """Every combination of the type's policy attributes (age band and minor derived together)."""
    names: list[str] = []
    choices: list[list[JSON]] = []
    has_birth_date = False
    for spec in schema.payload_fields:
        if spec.pii == "birth_date":
            has_birth_date = True
        elif spec.policy and spec.pii is None:
            names.append(spec.name)
            choices.append(_values(spec.avro_type))
    ages: list[tuple[str | None, bool | None]] = [(None, None)]
    if has_birth_date:
        ages = [(None, None), *((band, band in _MINOR_BANDS) for band in AGE_BANDS)]
    combos: list[dict[str, JSON]] = []
    for values in itertools.product(*choices):
        for band, minor in ages:
            attributes: dict[str, JSON] = dict(zip(names, values, strict=True))
            if has_birth_date:
                attributes["age_band"] = band
                attributes["minor"] = minor
            combos.append(attributes)
    if len(combos) > MAX_CASES_PER_TYPE:
        combos = random.Random(schema.signal_type).sample(combos, MAX_CASES_PER_TYPE)
    return combos


def policy_corpus(
    registry: SchemaRegistry,
    subscriptions: Mapping[str, Sequence[Subscription]],
    today: date,
    *,
    signal_types: Sequence[str] | None = None,
    sources: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[CorpusCase]:
    """The corpus inputs, type by type, each with every active subscription of its type.

    ``sources`` names, per signal type, the agencies to enumerate as the signal's source
    (default: one, :data:`CORPUS_SOURCE`); the enforcer warms its memo with its connectors'.
    """
    for signal_type in signal_types or registry.signal_types():
        subs = [s.policy_view() for s in subscriptions.get(signal_type, ()) if s.active]
        if not subs:
            continue
        agencies = (sources or {}).get(signal_type) or (CORPUS_SOURCE,)
        for attributes in attribute_space(registry.signal(signal_type)):
            for agency in agencies:
                yield CorpusCase(
                    signal_type,
                    attributes,
                    build_input(signal_type, agency, attributes, subs, today),
                )


def compare_engines(
    first: PolicyEngine, second: PolicyEngine, cases: Iterable[CorpusCase]
) -> tuple[int, list[tuple[CorpusCase, str]]]:
    """Decide every case with both engines; (cases compared, differences with a description).

    Versions are not compared (two backends of one policy may stamp the same version; a memo and
    its engine always do); everything else in each decision is. A failure counts as an outcome:
    both failing agrees, one failing is a difference.
    """
    compared = 0
    differences: list[tuple[CorpusCase, str]] = []
    for case in cases:
        compared += 1
        outcomes: list[dict[str, Any]] = []
        for engine in (first, second):
            try:
                decisions = engine.decide(case.policy_input)
                outcomes.append(
                    {k: replace(d, policy_version="") for k, d in sorted(decisions.items())}
                )
            except PolicyError as exc:
                outcomes.append({"error": type(exc).__name__})
        if outcomes[0] != outcomes[1]:
            differences.append((case, _describe(outcomes[0], outcomes[1])))
    return compared, differences


def _describe(first: dict[str, Any], second: dict[str, Any]) -> str:
    keys = sorted(set(first) | set(second))
    parts = [
        f"{key}: {first.get(key)!r} != {second.get(key)!r}"
        for key in keys
        if first.get(key) != second.get(key)
    ]
    return "; ".join(parts)
