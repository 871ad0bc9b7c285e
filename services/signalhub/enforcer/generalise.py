"""Generalisation and free-text scrubbing: disclose a coarser fact instead of the identifier.

A policy decision may ask for a field to be *generalised* (``Decision.generalise``,
``{field: method}``) rather than disclosed in clear:

=================  ===========================  =============================================
method             applies to (``pii`` kind)     delivers
=================  ===========================  =============================================
``age_band``       ``birth_date``               ``"0-11"``, ``"12-17"``, ``"18-22"``, ``"23-64"``,
                                                ``"65+"`` (the bands the policy sees)
``postcode_area``  ``address``, ``postcode``    the 4 digits of the postcode (``"6211"``)
``neighbourhood``  ``address``, ``postcode``    the CBS buurtcode of the signal (``"BU09350101"``)
=================  ===========================  =============================================

A method that does not apply to the field's kind is not applied: the field is withheld (when in
doubt, disclose less). A generalised value is always a string (the view schema says so).

Free text (``pii: free_text``) is withheld unless the decision lists it in clear; when it does,
:func:`scrub_free_text` still replaces every BSN-valid number (eleven test) and every known
identifier of the signal the subscriber may not see in clear, so clear free text never smuggles
out what the structured fields withhold.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from datetime import date

from signalhub.schema.registry import SignalSchema, age_band, as_date
from signalhub.types import Record

__all__ = [
    "APPLIES_TO",
    "BSN_IN_TEXT",
    "NEIGHBOURHOOD_FIELD",
    "WITHHELD_MARK",
    "applicable",
    "generalise_value",
    "is_bsn",
    "postcode_area",
    "scrub_free_text",
]

#: The pii kinds each generalisation method applies to.
APPLIES_TO: dict[str, frozenset[str]] = {
    "age_band": frozenset({"birth_date"}),
    "postcode_area": frozenset({"address", "postcode"}),
    "neighbourhood": frozenset({"address", "postcode"}),
}
#: The payload field every signal type has for the CBS neighbourhood code (not personal data).
NEIGHBOURHOOD_FIELD = "neighbourhood_code"
#: What replaces a known identifier in clear free text when it has no pseudonym to stand in.
WITHHELD_MARK = "[withheld]"

#: Nine digits, optionally grouped by single spaces, dots or hyphens ("1234.56.782"), not part of
#: a longer digit run. Whether it is a BSN is decided by :func:`is_bsn` (eleven test).
BSN_IN_TEXT = re.compile(r"(?<![0-9])[0-9](?:[ .\-]?[0-9]){8}(?![0-9])")
_POSTCODE = re.compile(r"(?<![0-9])([1-9][0-9]{3})\s?[A-Za-z]{2}(?![A-Za-z])")
_BUURTCODE = re.compile(r"^BU[0-9]{8}$")
_BSN_GROUPING = re.compile(r"[ .\-]")


def is_bsn(digits: str) -> bool:
    """True for nine digits that pass the BSN eleven test (9*d1 + 8*d2 + ... + 2*d8 - d9)."""
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    total = sum(int(d) * weight for d, weight in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def applicable(method: str, pii: str | None) -> bool:
    """Whether ``method`` can generalise a field of this pii kind."""
    return pii is not None and pii in APPLIES_TO.get(method, frozenset())


def postcode_area(text: str) -> str | None:
    """The four digits of the first Dutch postcode in ``text`` ("6211 AB" -> "6211")."""
    match = _POSTCODE.search(text)
    return match.group(1) if match else None


def generalise_value(
    method: str, schema: SignalSchema, field_name: str, payload: Record, today: date
) -> str | None:
    """The generalised form of ``payload[field_name]``; None when there is nothing to show.

    ``postcode_area`` of an address uses the signal's own postcode field (or a postcode inside
    the address); ``neighbourhood`` uses the signal's neighbourhood code. Both fall back to None
    rather than to anything finer.
    """
    value = payload.get(field_name)
    if value is None:
        return None
    if method == "age_band":
        birth = as_date(value)
        return age_band(birth, today) if birth is not None else None
    if method == "postcode_area":
        for text in _postcode_sources(schema, field_name, payload):
            area = postcode_area(text)
            if area is not None:
                return area
        return None
    if method == "neighbourhood":
        code = payload.get(NEIGHBOURHOOD_FIELD)
        return code if isinstance(code, str) and _BUURTCODE.match(code) else None
    return None


def _postcode_sources(schema: SignalSchema, field_name: str, payload: Record) -> Iterable[str]:
    """The field itself when it is a postcode, else the signal's postcode fields, then itself."""
    own = payload.get(field_name)
    if schema.field(field_name).pii == "postcode" and isinstance(own, str):
        yield own
        return
    for spec in schema.payload_fields:
        value = payload.get(spec.name)
        if spec.pii == "postcode" and isinstance(value, str):
            yield value
    if isinstance(own, str):
        yield own


def scrub_free_text(
    text: str,
    bsn_pseudonym: Callable[[str], str],
    hidden: Iterable[tuple[str, str | None]] = (),
) -> str:
    """``text`` with BSN-valid numbers and hidden identifiers replaced.

    ``bsn_pseudonym(digits)`` gives the replacement of a BSN (its pseudonym in the subscriber's
    domain). ``hidden`` holds ``(identifier, replacement)`` pairs: the signal's own identifiers
    the subscriber may not see in clear, replaced case-insensitively by their pseudonym or, when
    the replacement is None, by :data:`WITHHELD_MARK`. Longer identifiers are replaced first, so
    a name inside an address does not break the address's replacement.
    """

    def replace_bsn(match: re.Match[str]) -> str:
        digits = _BSN_GROUPING.sub("", match.group(0))
        return bsn_pseudonym(digits) if is_bsn(digits) else match.group(0)

    scrubbed = BSN_IN_TEXT.sub(replace_bsn, text)
    for identifier, replacement in sorted(hidden, key=lambda pair: -len(pair[0])):
        if identifier.strip():
            scrubbed = _replace_all(scrubbed, identifier.strip(), replacement or WITHHELD_MARK)
    return scrubbed


def _replace_all(text: str, identifier: str, replacement: str) -> str:
    """``text`` with every occurrence of ``identifier`` replaced, matched like ``re.IGNORECASE``.

    Compiling a pattern per identifier was the cost of scrubbing (the identifiers differ per
    signal, so the ``re`` cache misses). When both strings are ASCII, ASCII lower-casing gives
    exactly the matches of the ignore-case pattern (the non-ASCII look-alikes it also accepts,
    such as the Kelvin sign for ``k``, cannot occur), so plain ``str.find`` does it.
    """
    if not (text.isascii() and identifier.isascii()):
        return _ignore_case(identifier).sub(lambda _: replacement, text)
    folded, needle = text.lower(), identifier.lower()
    start = folded.find(needle)
    if start < 0:
        return text
    parts: list[str] = []
    end = 0
    while start >= 0:
        parts += (text[end:start], replacement)
        end = start + len(needle)
        start = folded.find(needle, end)
    parts.append(text[end:])
    return "".join(parts)


@functools.lru_cache(maxsize=1024)
def _ignore_case(identifier: str) -> re.Pattern[str]:
    return re.compile(re.escape(identifier), re.IGNORECASE)
