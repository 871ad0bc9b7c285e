"""What a signal is about, as hub-internal pseudonyms: the keys bundles are linked on.

A signal joins at most two bundles: the person of its BSN field and the address of its postcode
plus house number. Both are pseudonymised in the hub's internal domain ``signalhub-bundling`` (a
domain no subscriber receives), so the bundler's state never holds a clear identifier. For the
alert the same subject is also pseudonymised in the casework domain ``zvh-casework``: that is the
pseudonym the casework consultation already receives for the person's BSN in its deliveries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from signalhub.pseudonym.pseudonyms import Pseudonymiser, normalise
from signalhub.schema.registry import SignalSchema
from signalhub.types import Record
from signalhub.wire import bundle_id

__all__ = [
    "BUNDLING_DOMAIN",
    "CASEWORK_DOMAIN",
    "Subject",
    "address_key",
    "epoch_ms",
    "subjects_of",
]

#: The hub's own pseudonym domain for linking; never delivered to anyone.
BUNDLING_DOMAIN = "signalhub-bundling"
#: The casework consultation's domain: alerts name their subject in it.
CASEWORK_DOMAIN = "zvh-casework"
#: The first house number in an address line ("Boschstraat 12a, Maastricht" -> "12a").
_HOUSE_NUMBER = re.compile(r"(?:^|\s)(\d{1,5})\s*-?\s*([a-z]{0,2})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Subject:
    """One bundle a signal joins: its kind, hub-internal key and casework pseudonym."""

    kind: str  # "person" | "address"
    key: str  # pseudonym in BUNDLING_DOMAIN
    casework_ref: str  # pseudonym in CASEWORK_DOMAIN

    @property
    def bundle_id(self) -> str:
        return bundle_id(self.key)


def address_key(postcode: str | None, address: str | None) -> str | None:
    """``"<postcode> <house number>"`` normalised, or None when either part is missing."""
    if not postcode or not address:
        return None
    match = _HOUSE_NUMBER.search(address)
    if match is None:
        return None
    number = match.group(1).lstrip("0") + match.group(2).casefold()
    return f"{normalise('postcode', postcode)} {number}"


def subjects_of(
    schema: SignalSchema, payload: Record, pseudonymiser: Pseudonymiser
) -> list[Subject]:
    """The person (first BSN field) and address (postcode + house number) a payload names."""
    found: list[Subject] = []
    bsn = next(
        (
            str(payload[spec.name])
            for spec in schema.payload_fields
            if spec.pii == "bsn" and payload.get(spec.name)
        ),
        None,
    )
    if bsn is not None:
        found.append(_subject(pseudonymiser, "person", "bsn", bsn))
    postcode = _first(schema, payload, "postcode")
    key = address_key(postcode, _first(schema, payload, "address"))
    if key is not None:
        found.append(_subject(pseudonymiser, "address", "address", key))
    return found


def _subject(pseudonymiser: Pseudonymiser, kind: str, pii: str, value: str) -> Subject:
    return Subject(
        kind,
        pseudonymiser.pseudonym(BUNDLING_DOMAIN, pii, value),
        pseudonymiser.pseudonym(CASEWORK_DOMAIN, pii, value),
    )


def _first(schema: SignalSchema, payload: Record, pii: str) -> str | None:
    for spec in schema.payload_fields:
        value = payload.get(spec.name)
        if spec.pii == pii and isinstance(value, str) and value.strip():
            return value
    return None


def epoch_ms(moment: datetime) -> int:
    """A timezone-aware datetime as milliseconds since the epoch (how the store keeps times)."""
    return int(moment.timestamp() * 1000)
