"""Projection: cut a signal's payload down to what one decision permits.

A payload field reaches a subscriber in one of three ways: in clear (the decision lists it in
``fields``), as a keyed pseudonym in the subscriber's domain (listed in ``pseudonymise``), or not
at all (withheld). A field listed in both is pseudonymised: when in doubt, disclose less. Field
names the schema does not have are ignored: they cannot disclose anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from signalhub.policy import Decision
from signalhub.pseudonym import Pseudonymiser
from signalhub.schema import SignalSchema
from signalhub.types import Record

__all__ = ["Projection", "plan_projection", "project_payload"]


@dataclass(frozen=True)
class Projection:
    """Which payload fields a decision discloses in clear, pseudonymises and withholds."""

    clear: tuple[str, ...]
    pseudonymised: tuple[str, ...]
    withheld: tuple[str, ...]


def plan_projection(schema: SignalSchema, decision: Decision) -> Projection:
    """Sort the schema's payload fields by what the decision permits (schema order kept)."""
    pseudonymise = set(decision.pseudonymise)
    clear = set(decision.fields) - pseudonymise
    names = [spec.name for spec in schema.payload_fields]
    return Projection(
        clear=tuple(name for name in names if name in clear),
        pseudonymised=tuple(name for name in names if name in pseudonymise),
        withheld=tuple(name for name in names if name not in clear and name not in pseudonymise),
    )


def project_payload(
    schema: SignalSchema,
    projection: Projection,
    payload: Record,
    pseudonymiser: Pseudonymiser,
    domain: str,
) -> Record:
    """The subscriber's payload: clear fields copied, pseudonymised fields keyed to ``domain``."""
    view: Record = {name: payload.get(name) for name in projection.clear}
    for name in projection.pseudonymised:
        value = payload.get(name)
        kind = schema.field(name).pii or name
        view[name] = (
            None if value is None else pseudonymiser.pseudonym(domain, kind, _as_text(value))
        )
    return view


def _as_text(value: object) -> str:
    """The text a pseudonym is computed over; dates by their ISO form, lists joined."""
    if isinstance(value, list | tuple):
        return "|".join(_as_text(item) for item in value)
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)
