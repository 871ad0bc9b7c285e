"""Projection: cut a signal's payload down to what one decision permits.

A payload field reaches a subscriber in one of four ways: in clear (the decision lists it in
``fields``), as a keyed pseudonym in the subscriber's domain (listed in ``pseudonymise``),
generalised (listed in ``generalise`` with a method that fits the field's ``pii`` kind, see
:mod:`signalhub.enforcer.generalise`), or not at all (withheld). Precedence when lists overlap:
pseudonymise, then generalise, then clear — when in doubt, disclose less. A generalisation that
does not fit the field's kind withholds the field. Field names the schema does not have are
ignored: they cannot disclose anything.

Free text in clear is scrubbed: BSN-valid numbers become their pseudonym, the signal's other
identifiers the subscriber may not see in clear become their pseudonym or ``[withheld]``. A hub
id in clear (a field the schema marks ``"hub_id"``, e.g. a casework alert's ``bundle_id``) leaves
as the id of the subscriber's domain: the hub's own value is the same in every delivery and
would link the domains that receive it.

Every pseudonym issued here is reported to an optional :class:`PseudonymSink` (the
re-identification vault), so the core stays free of I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from signalhub.enforcer.generalise import applicable, generalise_value, scrub_free_text
from signalhub.policy.decision import Decision
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema.registry import SignalSchema
from signalhub.types import Record

__all__ = [
    "Projection",
    "PseudonymSink",
    "identifier_values",
    "plan_projection",
    "project_payload",
]

#: pii kinds whose values identify a person on their own (free text is scrubbed, not matched).
IDENTIFYING_KINDS = frozenset({"bsn", "name", "address", "postcode", "phone"})


class PseudonymSink(Protocol):
    """Told of every pseudonym the core issues, e.g. to keep it in the re-identification vault."""

    def record(self, domain: str, kind: str, value: str, pseudonym: str) -> None: ...


@dataclass(frozen=True)
class Projection:
    """Which payload fields a decision discloses in clear, pseudonymises, generalises, withholds."""

    clear: tuple[str, ...]
    pseudonymised: tuple[str, ...]
    withheld: tuple[str, ...]
    #: ``(field, method)`` pairs, schema order.
    generalised: tuple[tuple[str, str], ...] = ()


def plan_projection(schema: SignalSchema, decision: Decision) -> Projection:
    """Sort the schema's payload fields by what the decision permits (schema order kept)."""
    return _plan(schema, decision)


# Planned per delivery, but a policy gives the same few decisions over and over: both arguments
# are immutable (a schema hashes by identity, a decision by value), so the plan is reused.
@functools.lru_cache(maxsize=4096)
def _plan(schema: SignalSchema, decision: Decision) -> Projection:
    pseudonymise = set(decision.pseudonymise)
    generalise = {
        name: method for name, method in decision.generalise.items() if name not in pseudonymise
    }
    clear = set(decision.fields) - pseudonymise - set(generalise)
    names = [spec.name for spec in schema.payload_fields]
    generalised = tuple(
        (spec.name, generalise[spec.name])
        for spec in schema.payload_fields
        if spec.name in generalise and applicable(generalise[spec.name], spec.pii)
    )
    disclosed = clear | pseudonymise | {name for name, _ in generalised}
    return Projection(
        clear=tuple(name for name in names if name in clear),
        pseudonymised=tuple(name for name in names if name in pseudonymise),
        withheld=tuple(name for name in names if name not in disclosed),
        generalised=generalised,
    )


def identifier_values(schema: SignalSchema, payload: Record) -> dict[str, tuple[str, str]]:
    """``{field: (kind, value)}`` of the signal's identifying pii fields that hold a string."""
    found: dict[str, tuple[str, str]] = {}
    for spec in schema.payload_fields:
        value = payload.get(spec.name)
        if spec.pii in IDENTIFYING_KINDS and isinstance(value, str) and value.strip():
            found[spec.name] = (spec.pii, value)
    return found


def project_payload(
    schema: SignalSchema,
    projection: Projection,
    payload: Record,
    pseudonymiser: Pseudonymiser,
    domain: str,
    *,
    sink: PseudonymSink | None = None,
    today: date | None = None,
) -> Record:
    """The subscriber's payload: clear fields copied (free text scrubbed, hub ids as the ids of
    ``domain``), pseudonymised fields keyed to ``domain``, generalised fields coarsened (as
    strings)."""

    def pseudonym(kind: str, value: str) -> str:
        made = pseudonymiser.pseudonym(domain, kind, value)
        if sink is not None:
            sink.record(domain, kind, value, made)
        return made

    view: Record = {}
    for name in projection.clear:
        value = payload.get(name)
        spec = schema.field(name)
        if spec.hub_id is not None and isinstance(value, str):
            value = pseudonymiser.domain_id(domain, spec.hub_id, value)
        elif spec.pii == "free_text" and isinstance(value, str):
            value = scrub_free_text(
                value,
                lambda digits: pseudonym("bsn", digits),
                _hidden_identifiers(schema, projection, payload, pseudonym),
            )
        view[name] = value
    for name in projection.pseudonymised:
        value = payload.get(name)
        kind = schema.field(name).pii or name
        view[name] = None if value is None else pseudonym(kind, _as_text(value))
    on = today or datetime.now(UTC).date()
    for name, method in projection.generalised:
        view[name] = generalise_value(method, schema, name, payload, on)
    return view


def _hidden_identifiers(
    schema: SignalSchema,
    projection: Projection,
    payload: Record,
    pseudonym: _Maker,
) -> list[tuple[str, str | None]]:
    """The signal's identifiers not disclosed in clear, with their stand-in in free text."""
    identifiers = identifier_values(schema, payload)
    clear_values = {
        value.casefold() for name, (_, value) in identifiers.items() if name in projection.clear
    }
    pseudonymised = set(projection.pseudonymised)
    hidden: list[tuple[str, str | None]] = []
    for name, (kind, value) in identifiers.items():
        if name in projection.clear or value.casefold() in clear_values:
            continue
        hidden.append((value, pseudonym(kind, value) if name in pseudonymised else None))
    return hidden


class _Maker(Protocol):
    def __call__(self, kind: str, value: str) -> str: ...


def _as_text(value: object) -> str:
    """The text a pseudonym is computed over; dates by their ISO form, lists joined."""
    if isinstance(value, list | tuple):
        return "|".join(_as_text(item) for item in value)
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)
