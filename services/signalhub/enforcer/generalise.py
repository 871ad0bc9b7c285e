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

A BSN is found however it is written (:func:`find_bsns`, shared with the leak guard so the two
never disagree): any Unicode decimal digits (full-width ``１２３``, Arabic-Indic, ...) and NFKC
compatibility forms count as digits; any run of separators (whitespace of any kind including
NBSP and thin spaces, ``.``, ``-`` and its Unicode dashes, ``/``, ``_``, zero-width characters)
joins digit groups; nine digits, or eight (a BSN below 100,000,000 written without its leading
zero, tested as ``0`` + the eight; not when grouped as a calendar date, ``24-06-2024``), made
of whole digit groups, pass the eleven test. Tokens
whose digits are not a number anyone wrote (pseudonyms ``pn1.k…``, UUID-shaped ids, CBS
neighbourhood codes ``BU…``) are cut out first.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from signalhub.schema.registry import SignalSchema, age_band, as_date
from signalhub.types import Record

__all__ = [
    "APPLIES_TO",
    "NEIGHBOURHOOD_FIELD",
    "WITHHELD_MARK",
    "BsnMatch",
    "applicable",
    "find_bsns",
    "generalise_value",
    "has_bsn",
    "is_bsn",
    "number_shadow",
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

_POSTCODE = re.compile(r"(?<![0-9])([1-9][0-9]{3})\s?[A-Za-z]{2}(?![A-Za-z])")
_BUURTCODE = re.compile(r"^BU[0-9]{8}$")

# -- BSN detection: on a "shadow" of the text, as long as the text, so a match's offsets are the
# text's own. In the shadow digits are ASCII, separators are ASCII, hub tokens are "x"es.
_SEPARATOR = r"[\s./_\-]"
#: Digit groups joined by separator runs: the units a BSN window is cut from.
_NUMBER = re.compile(rf"[0-9]+(?:{_SEPARATOR}+[0-9]+)*")
_GROUP = re.compile(r"[0-9]+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
#: Eight digits with only separators between them: without one, no window can be a BSN.
_EIGHT_DIGITS = re.compile(rf"[0-9](?:{_SEPARATOR}*[0-9]){{7}}")
#: Tokens whose digits are no number anyone wrote: the hub's pseudonyms, UUID-shaped ids and CBS
#: neighbourhood codes (``BU`` + 8 digits, delivered in clear as a generalised address).
_NOT_A_NUMBER = re.compile(
    r"pn1\.k[0-9]+\.[a-z2-7]{32}"
    r"|(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12}|BU[0-9]{8})(?![0-9A-Za-z])"
)
#: Characters NFKC leaves alone that still only separate: dashes, the minus sign, zero-width
#: characters, the soft hyphen and the word joiner (invisible between two digits).
_EXTRA_SEPARATORS = frozenset(
    "\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63"
    "\u200b\u200c\u200d\u2060\ufeff"
)


def is_bsn(digits: str) -> bool:
    """True for nine ASCII digits that pass the BSN eleven test (9*d1 + 8*d2 + ... + 2*d8 - d9)."""
    if len(digits) != 9 or not (digits.isascii() and digits.isdigit()) or digits == "000000000":
        return False
    total = sum(int(d) * weight for d, weight in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


@dataclass(frozen=True)
class BsnMatch:
    """A BSN-valid number in a text: where it is written, and its nine-digit form."""

    start: int
    end: int
    bsn: str


def find_bsns(text: str) -> list[BsnMatch]:
    """Every BSN-valid number in ``text``, however written; overlapping finds are merged into
    one span (the first number found names it), so replacing the spans leaves none behind."""
    merged: list[BsnMatch] = []
    if not _may_hold_bsn(text):
        return merged
    for found in _bsn_windows(text):
        if merged and found.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = BsnMatch(last.start, max(last.end, found.end), last.bsn)
        else:
            merged.append(found)
    return merged


def has_bsn(text: str) -> bool:
    """Whether :func:`find_bsns` would find anything (stops at the first)."""
    return _may_hold_bsn(text) and next(_bsn_windows(text), None) is not None


def number_shadow(text: str) -> str:
    """``text`` as the BSN search reads it, of the same length: every digit ASCII, every
    separator one ASCII separator, tokens that are no number (pseudonyms, UUID-shaped ids, CBS
    neighbourhood codes) turned into ``x``."""
    return _cut_tokens(_digits_shadow(text))


def _digits_shadow(text: str) -> str:
    """``text`` with every non-ASCII character as :func:`_shadow_char` reads it."""
    return text if text.isascii() else _NON_ASCII.sub(lambda m: _shadow_char(m.group(0)), text)


def _cut_tokens(shadow: str) -> str:
    if "pn1." in shadow or "-" in shadow or "BU" in shadow:
        shadow = _NOT_A_NUMBER.sub(lambda match: "x" * len(match.group(0)), shadow)
    return shadow


def _bsn_windows(text: str) -> Iterator[BsnMatch]:
    """BSN-valid runs of whole digit groups in ``text``, left to right: nine digits, or eight
    not starting with 0 (the number without its leading zero is never written ``0…``). Only
    for a text :func:`_may_hold_bsn`."""
    shadow = _digits_shadow(text)
    if _EIGHT_DIGITS.search(shadow) is None:
        return
    shadow = _cut_tokens(shadow)
    for number in _NUMBER.finditer(shadow):
        groups = [(g.start(), g.end()) for g in _GROUP.finditer(shadow, *number.span())]
        for first, (start, _) in enumerate(groups):
            parts: list[str] = []
            for group_start, group_end in groups[first:]:
                parts.append(shadow[group_start:group_end])
                digits = "".join(parts)
                if len(digits) > 9:
                    break
                written = len(digits) == 9 or (
                    len(digits) == 8 and digits[0] != "0" and not _is_date(parts)
                )
                if written and is_bsn(digits.zfill(9)):
                    yield BsnMatch(start, group_end, digits.zfill(9))


def _may_hold_bsn(text: str) -> bool:
    """A first look that rules out most texts at once: a BSN needs eight characters that could
    be digits (ASCII digits, and any character outside ASCII), counted at C speed (a regular
    expression over a long free text costs ten times as much); and a text that is one token
    that is no number (a neighbourhood code is delivered on its own in every signal) has none."""
    if len(text) < 8:
        return False
    ascii_part = text.encode("ascii", "ignore")
    digits = len(ascii_part) - len(ascii_part.translate(None, b"0123456789"))
    return digits + len(text) - len(ascii_part) >= 8 and not _NOT_A_NUMBER.fullmatch(text)


def _is_date(parts: list[str]) -> bool:
    """Whether digit groups are a calendar date as written (2024-06-24, 24.06.2024): eight
    digits in those groups are a date one time in eleven passing the eleven test, not a BSN."""
    lengths = [len(part) for part in parts]
    if lengths == [4, 2, 2]:
        year, month, day = (int(part) for part in parts)
    elif lengths == [2, 2, 4]:
        day, month, year = (int(part) for part in parts)
    else:
        return False
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31


@functools.lru_cache(maxsize=4096)
def _shadow_char(char: str) -> str:
    """One character of a non-ASCII text as :func:`number_shadow` reads it."""
    if char.isascii():
        return char
    if char.isdecimal():
        return str(unicodedata.decimal(char))
    if char.isspace() or char in _EXTRA_SEPARATORS:
        return " "
    folded = unicodedata.normalize("NFKC", char)  # full-width forms, superscripts, circled digits
    if len(folded) == 1 and folded.isascii():
        return folded
    if folded.isspace():
        return " "
    return "x"


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
    domain); it is given the nine ASCII digits, however the text wrote them (:func:`find_bsns`).
    ``hidden`` holds ``(identifier, replacement)`` pairs: the signal's own identifiers the
    subscriber may not see in clear, replaced case-insensitively by their pseudonym or, when the
    replacement is None, by :data:`WITHHELD_MARK`. Longer identifiers are replaced first, so a
    name inside an address does not break the address's replacement.
    """
    scrubbed = _replace_bsns(text, bsn_pseudonym)
    for identifier, replacement in sorted(hidden, key=lambda pair: -len(pair[0])):
        if identifier.strip():
            scrubbed = _replace_all(scrubbed, identifier.strip(), replacement or WITHHELD_MARK)
    return scrubbed


def _replace_bsns(text: str, bsn_pseudonym: Callable[[str], str]) -> str:
    found = find_bsns(text)
    if not found:
        return text
    parts: list[str] = []
    end = 0
    for match in found:
        parts += (text[end : match.start], bsn_pseudonym(match.bsn))
        end = match.end
    parts.append(text[end:])
    return "".join(parts)


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
