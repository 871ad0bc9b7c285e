"""The leak guard: a last check on an outgoing delivery, independent of the policy that shaped it.

Projection is driven by the decision; if the decision is wrong (a data mistake in an agreement,
a bug, a policy that puts a BSN in clear), projection faithfully leaks. The guard does not trust
the decision for the two things that must never leave in clear:

- a **BSN-valid number** (nine digits passing the eleven test, also grouped as ``1234.56.782``)
  anywhere in any string of the delivered payload — a BSN is never permitted in clear;
- one of **the signal's own identifiers** (its ``bsn``/``name``/``address``/``postcode``/``phone``
  values) in any string of the payload, unless the decision disclosed that very value in clear
  (a name or address some partners may receive).

Pseudonymised fields hold pseudonyms made by the hub and are not scanned; pseudonyms inside free
text are cut out before the scan, so their base32 digits cannot look like a BSN. Only strings
are scanned, and the signal's identifiers are prepared once per signal
(:meth:`SignalIdentifiers.of`), as is each string delivered (most reach several deliveries
unchanged), so the check stays cheap on the hot path. A finding names the field and the kind of
identifier, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from signalhub.enforcer.generalise import BSN_IN_TEXT, is_bsn
from signalhub.enforcer.projection import Projection, identifier_values
from signalhub.schema.registry import SignalSchema
from signalhub.types import Record

__all__ = ["Leak", "SignalIdentifiers", "scan_delivery"]

#: Identifiers shorter than this (after normalisation) are not matched: too many false alarms.
MIN_NEEDLE = 5
_COMPACT_KINDS = frozenset({"bsn", "postcode", "phone"})
_PSEUDONYM_TOKEN = re.compile(r"pn1\.k[0-9]+\.[a-z2-7]{32}")
_SEPARATORS = re.compile(r"[\s.\-]+")


@dataclass(frozen=True)
class Leak:
    """One finding: which delivered field carries what kind of identifier (never the value)."""

    field: str
    what: str

    def describe(self) -> str:
        return f"{self.what} in {self.field}"


@dataclass(frozen=True)
class _Needle:
    source_field: str
    kind: str
    text: str  # normalised: compact for _COMPACT_KINDS, else case-folded with spaces collapsed

    @property
    def compact(self) -> bool:
        return self.kind in _COMPACT_KINDS


@dataclass(frozen=True)
class _Prepared:
    """A delivered string as the scan needs it (pseudonyms cut out)."""

    has_bsn: bool
    loose: str
    compact: str


@dataclass(frozen=True)
class SignalIdentifiers:
    """The signal's own identifiers, normalised once per signal for every delivery's scan."""

    needles: tuple[_Needle, ...]
    #: Delivered strings already prepared, per signal: a clear field reaches every delivery
    #: that discloses it as the same string, so it is prepared once, not once per delivery.
    _prepared: dict[str, _Prepared] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, schema: SignalSchema, payload: Record) -> SignalIdentifiers:
        needles = []
        for name, (kind, value) in identifier_values(schema, payload).items():
            text = _compact(value) if kind in _COMPACT_KINDS else _loose(value)
            if len(text) >= MIN_NEEDLE:
                needles.append(_Needle(name, kind, text))
        return cls(tuple(needles))

    def prepared(self, text: str) -> _Prepared:
        found = self._prepared.get(text)
        if found is None:
            found = self._prepared[text] = _prepare(text)
        return found


def scan_delivery(
    view_payload: Record, projection: Projection, identifiers: SignalIdentifiers
) -> list[Leak]:
    """Every identifier in ``view_payload`` the decision did not permit in clear; empty = safe."""
    permitted = {
        needle.text
        for needle in identifiers.needles
        if needle.source_field in projection.clear and needle.kind != "bsn"
    }
    watched = [needle for needle in identifiers.needles if needle.text not in permitted]
    skip = set(projection.pseudonymised)
    leaks: list[Leak] = []
    for name, value in view_payload.items():
        if name in skip:
            continue
        for text in (value,) if isinstance(value, str) else _strings(value):
            leaks.extend(_scan_text(name, identifiers.prepared(text), watched))
    return leaks


def _prepare(text: str) -> _Prepared:
    if "pn1." in text:
        text = _PSEUDONYM_TOKEN.sub(" ", text)
    # Most strings hold no nine-digit run at all; one search says so before any digit is checked.
    has_bsn = BSN_IN_TEXT.search(text) is not None and any(
        is_bsn(_SEPARATORS.sub("", match.group(0))) for match in BSN_IN_TEXT.finditer(text)
    )
    return _Prepared(has_bsn, _loose(text), _compact(text))


def _scan_text(name: str, text: _Prepared, watched: list[_Needle]) -> Iterator[Leak]:
    if text.has_bsn:
        yield Leak(name, "a BSN-valid number")
    for needle in watched:
        if needle.text in (text.compact if needle.compact else text.loose):
            yield Leak(name, f"the {needle.kind} of {needle.source_field}")


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


# str.split() splits at exactly the characters ``\s`` matches in a str pattern (checked over every
# code point), so these equal ``re.sub(r"\s+", " ", text).strip()`` and ``re.sub(r"[\s.\-]+", "",
# text)`` of the case-folded text, at a third of the cost.
def _loose(text: str) -> str:
    return " ".join(text.casefold().split())


def _compact(text: str) -> str:
    return "".join(text.casefold().split()).replace(".", "").replace("-", "")
