"""The leak guard: a last check on an outgoing delivery, independent of the policy that shaped it.

Projection is driven by the decision; if the decision is wrong (a data mistake in an agreement,
a bug, a policy that puts a BSN in clear), projection faithfully leaks. The guard does not trust
the decision for the two things that must never leave in clear:

- a **BSN-valid number**, however it is written (:func:`~signalhub.enforcer.generalise.find_bsns`:
  any separators, full-width or other Unicode digits, the eight-digit form without its leading
  zero), anywhere in any string of the outgoing record — a BSN is never permitted in clear;
- one of **the signal's own identifiers** (its ``bsn``/``name``/``address``/``postcode``/``phone``
  values) in any string of the record, unless the decision disclosed that very value in clear
  (a name or address some partners may receive).

:func:`scan_record` checks the whole record a subscriber receives: ``envelope``, ``delivery``,
``payload`` and the Kafka headers. Values the hub made itself are not read as numbers: its ids
(:data:`HUB_IDS`: signal, delivery and bundle ids, the policy version) are skipped when they have
the shape the hub gives them (a value of another shape in such a field is scanned like any
other), pseudonymised fields hold pseudonyms, and pseudonyms and UUIDs inside text are cut out
before the scan, so their hex or base32 digits cannot look like a BSN. The agency's record key
(``envelope.source_ref``, e.g. ``Z-2024-10000``) is read as a key: its digit groups are separate
numbers unless the key is nothing but a number (a BSN used as the key). Only strings are scanned.

The check runs on every delivery, so it is built to cost little when nothing is found, as is
almost always the case. The signal's identifiers are normalised once per signal
(:meth:`SignalIdentifiers.of`), and what each payload string holds is found once per signal
(most strings reach several deliveries unchanged) and remembered as bits: one for a BSN-valid
number, one per identifier. The fields the hub fills (the envelope but its key, the delivery
block, the headers) are alike for every signal of a subscription: they are read as one text,
prepared once per process. A string's loose and compact forms are only made when it contains a
word or character of an identifier. Only a delivery holding something its decision did not
disclose is read again field by field, to name them: a finding names the field path and the
rule, never the value.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from signalhub.enforcer.generalise import has_bsn, is_bsn, number_shadow
from signalhub.enforcer.projection import Projection, identifier_values
from signalhub.schema.registry import SignalSchema
from signalhub.types import Record
from signalhub.wire import DELIVERY_ID_HEADER, POLICY_VERSION_HEADER, SIGNAL_TYPE_HEADER

__all__ = ["HUB_IDS", "Leak", "SignalIdentifiers", "scan_record"]

#: Identifiers shorter than this (after normalisation) are not matched: too many false alarms.
MIN_NEEDLE = 5
BSN_RULE = "a BSN-valid number"
_COMPACT_KINDS = frozenset({"bsn", "postcode", "phone"})
_PSEUDONYM_TOKEN = re.compile(r"pn1\.k[0-9]+\.[a-z2-7]{32}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_POLICY_VERSION = re.compile(r"sha256:[0-9a-f]{16}")
#: The fields that hold ids the hub made (``signalhub.wire``) and the shape it makes them in.
HUB_IDS: Mapping[str, re.Pattern[str]] = {
    "envelope.signal_id": _UUID,  # derive_signal_id, or alert_signal_id for casework alerts
    "delivery.delivery_id": _UUID,
    "delivery.policy_version": _POLICY_VERSION,
    "payload.bundle_id": _UUID,  # casework_alert
    f"header {DELIVERY_ID_HEADER}": _UUID,
    f"header {POLICY_VERSION_HEADER}": _POLICY_VERSION,
}


def _hub_ids(prefix: str) -> dict[str, re.Pattern[str]]:
    return {
        path.removeprefix(prefix): shape
        for path, shape in HUB_IDS.items()
        if path.startswith(prefix)
    }


#: Envelope fields holding an agency's record key rather than prose.
_KEYS = ("source_ref",)
_ENVELOPE_IDS = _hub_ids("envelope.")
_DELIVERY_IDS = _hub_ids("delivery.")
_PAYLOAD_IDS = _hub_ids("payload.")
_HEADER_IDS = _hub_ids("header ")
#: The headers that repeat a field of the record, read under the same rule (a hub id of the same
#: shape, or none): :func:`signalhub.enforcer.outputs.delivery_headers`.
_MIRRORS = {
    DELIVERY_ID_HEADER: ("delivery", "delivery_id"),
    SIGNAL_TYPE_HEADER: ("envelope", "signal_type"),
    POLICY_VERSION_HEADER: ("delivery", "policy_version"),
}
_CONTAINERS = (list, tuple, dict)
_DIGIT_RUN = re.compile(r"[0-9]+")
#: A decimal digit of another script (``\d`` is every Unicode decimal digit in a str pattern):
#: neither a non-digit nor an ASCII digit. A class, not a look-ahead: five times faster on text.
_OTHER_DIGIT = re.compile(r"[^\D0-9]")
_ASCII_BYTES = bytes(range(128))
_ONLY_A_NUMBER = re.compile(r"[\s./_\-]*[0-9][\s./_\-0-9]*")


@dataclass(frozen=True)
class Leak:
    """One finding: which delivered field carries what kind of identifier (never the value)."""

    field: str
    what: str

    def describe(self) -> str:
        return f"{self.what} in {self.field}"


class _Prepared:
    """A delivered string as the scan reads it: pseudonyms cut out, folded (NFKC, ASCII digits,
    case-folded). Its loose and compact forms are made on first use: only a string that holds
    a needle's probe needs them, and making them is most of the cost on long free text."""

    _loose: str | None = None
    _compact: str | None = None

    def __init__(self, has_bsn: bool, folded: str) -> None:
        self.has_bsn = has_bsn
        self.folded = folded

    @property
    def loose(self) -> str:
        if self._loose is None:
            self._loose = " ".join(self.folded.split())
        return self._loose

    @property
    def compact(self) -> str:
        if self._compact is None:
            self._compact = _compact_loose(self.loose)
        return self._compact


#: What a string holds, as bits: the lowest for a BSN-valid number, ``2 << i`` for needle ``i``.
_BSN_BIT = 1


class SignalIdentifiers:
    """The signal's own identifiers, normalised once per signal for every delivery's scan, and
    what each payload string holds, found once per signal (most reach several deliveries)."""

    __slots__ = ("_disclosable", "_found", "_keys", "_needles", "fields")

    def __init__(
        self,
        fields: tuple[tuple[str, str], ...],
        needles: tuple[tuple[str, bool, str], ...],
        disclosable: tuple[tuple[str, str], ...],
    ) -> None:
        #: ``(field, kind)`` of each identifier looked for (values too short are not).
        self.fields = fields
        #: Per identifier: its normalised value (compact for ``_COMPACT_KINDS``, else case-folded
        #: with spaces collapsed), whether it is looked for in a string's compact form (else in
        #: its loose form), and its probe: what a folded string must contain to hold it, the
        #: value's longest word (a loose form only collapses spaces) or its first character (a
        #: compact form may have lost separators anywhere between the value's characters).
        self._needles = needles
        #: ``(field, normalised value)`` of the identifiers a decision may disclose in clear.
        self._disclosable = disclosable
        self._found: dict[str, int] = {}
        self._keys: dict[str, int] = {}

    @classmethod
    def of(cls, schema: SignalSchema, payload: Record) -> SignalIdentifiers:
        fields, needles, disclosable = [], [], []
        for name, (kind, value) in identifier_values(schema, payload).items():
            compact = kind in _COMPACT_KINDS
            text = _compact(value) if compact else _loose(value)
            if len(text) >= MIN_NEEDLE:
                fields.append((name, kind))
                needles.append((text, compact, text[0] if compact else _longest_word(text)))
                if kind != "bsn":
                    disclosable.append((name, text))
        return cls(tuple(fields), tuple(needles), tuple(disclosable))

    def _watched(self, projection: Projection) -> int:
        """The bits a delivery under ``projection`` may not carry: a BSN-valid number always,
        an identifier unless the decision disclosed that very value in clear (in any field)."""
        bits = (2 << len(self._needles)) - 1
        permitted = [text for name, text in self._disclosable if name in projection.clear]
        if permitted:
            for i, (text, _, _) in enumerate(self._needles):
                if text in permitted:
                    bits &= ~(2 << i)
        return bits

    def _rules(self, bits: int) -> Iterator[str]:
        """The rules ``bits`` stand for, a BSN-valid number first."""
        if bits & _BSN_BIT:
            yield BSN_RULE
        for i, (name, kind) in enumerate(self.fields):
            if bits & (2 << i):
                yield f"the {kind} of {name}"

    def _in_payload(self, texts: list[str]) -> int:
        """What payload strings hold, remembered for this signal only (it is personal data)."""
        held = 0
        found = self._found
        for text in texts:
            bits = found.get(text)
            if bits is None:
                bits = found[text] = self._bits(_prepare(text))
            held |= bits
        return held

    def _in_hub_fields(self, texts: list[str]) -> int:
        """What strings the hub filled hold: read as one text, prepared once per process (the
        text repeats for every signal of a subscription). NUL joins: no identifier holds one
        and it joins no digit groups, so the text holds what its parts hold."""
        return self._bits(_prepare_hub("\0".join(texts))) if texts else 0

    def _in_keys(self, texts: list[str]) -> int:
        """What agencies' record keys hold (:func:`_prepare_key`)."""
        held = 0
        for text in texts:
            bits = self._keys.get(text)
            if bits is None:
                bits = self._keys[text] = self._bits(_prepare_key(text))
            held |= bits
        return held

    def _bits(self, prepared: _Prepared) -> int:
        bits = _BSN_BIT if prepared.has_bsn else 0
        folded = prepared.folded
        for i, (text, compact, probe) in enumerate(self._needles):
            if probe in folded and text in (prepared.compact if compact else prepared.loose):
                bits |= 2 << i
        return bits


def scan_record(
    record: Record,
    headers: Sequence[tuple[str, bytes]],
    projection: Projection,
    identifiers: SignalIdentifiers,
) -> list[Leak]:
    """Every identifier the decision did not permit in clear anywhere in the outgoing record
    (``{"envelope", "delivery", "payload"}``) and its Kafka headers; empty = safe.

    A finding names the path (``payload.toelichting``, ``envelope.source_ref``,
    ``header signalhub.detail``) and the rule, never the value.
    """
    watched = identifiers._watched(projection)
    # What the whole record holds comes first: most deliveries hold nothing watched, and saying
    # so names no field. The fields the hub fills are read as one text; a header that repeats
    # the field it mirrors (as the hub writes them) holds what that field holds.
    parts = _parts(record, _unmirrored(record, headers), projection)
    texts = [_read(fields, hub_ids, skip) for _, fields, hub_ids, skip, _ in parts]
    held = (
        identifiers._in_hub_fields(texts[0] + texts[1] + texts[2])
        | identifiers._in_keys(texts[3])
        | identifiers._in_payload(texts[4])
    )
    if not held & watched:
        return []
    leaks = []
    for prefix, fields, hub_ids, skip, holds in _parts(record, headers, projection):
        for name, value in fields:
            bits = holds(identifiers, _read([(name, value)], hub_ids, skip)) & watched
            leaks += [Leak(prefix + name, rule) for rule in identifiers._rules(bits)]
    return leaks


def _parts(
    record: Record, headers: Sequence[tuple[str, bytes]], projection: Projection
) -> list[_Part]:
    """The record's parts as :func:`scan_record` reads them, the hub's three first."""
    envelope: Record = record.get("envelope") or {}
    keys = [(name, envelope[name]) for name in _KEYS if name in envelope]
    decoded = [(name, str(raw, "utf-8", "replace")) for name, raw in headers]
    payload: Record = record.get("payload") or {}
    hub = SignalIdentifiers._in_hub_fields
    return [
        ("envelope.", envelope.items(), _ENVELOPE_IDS, _KEYS, hub),
        ("delivery.", (record.get("delivery") or {}).items(), _DELIVERY_IDS, (), hub),
        ("header ", decoded, _HEADER_IDS, (), hub),
        ("envelope.", keys, {}, (), SignalIdentifiers._in_keys),
        (
            "payload.",
            payload.items(),
            _PAYLOAD_IDS,
            projection.pseudonymised,
            SignalIdentifiers._in_payload,
        ),
    ]


def _unmirrored(record: Record, headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers that do not repeat the record field they mirror (:data:`_MIRRORS`): one that
    does holds what that field holds, and adds nothing to what the record holds."""
    unmirrored = []
    for name, raw in headers:
        part, field = _MIRRORS.get(name, ("", ""))
        value = (record.get(part) or {}).get(field)
        if not (isinstance(value, str) and value.isascii() and raw == value.encode()):
            unmirrored.append((name, raw))
    return unmirrored


#: One part of a record as :func:`scan_record` reads it: path prefix, its fields, the hub ids
#: among them, the fields it does not read, and the method that finds what its strings hold.
_Part = tuple[
    str,
    Iterable[tuple[str, object]],
    Mapping[str, re.Pattern[str]],
    Container[str],
    Callable[[SignalIdentifiers, list[str]], int],
]


def _read(
    fields: Iterable[tuple[str, object]],
    hub_ids: Mapping[str, re.Pattern[str]],
    skip: Container[str] = (),
) -> list[str]:
    """The strings of ``fields`` the guard reads, nested ones included. Not read: the fields in
    ``skip``, and a hub id of its hub shape (:data:`HUB_IDS`)."""
    texts: list[str] = []
    for name, value in fields:
        if isinstance(value, str):
            if name not in skip:
                shape = hub_ids.get(name)
                if shape is None or not shape.fullmatch(value):
                    texts.append(value)
        elif isinstance(value, _CONTAINERS) and name not in skip:
            texts += _strings(value)
    return texts


def _longest_word(text: str) -> str:
    return max(text.split(" "), key=len)


def _prepare(text: str) -> _Prepared:
    if "pn1." in text:
        text = _PSEUDONYM_TOKEN.sub(" ", text)
    return _Prepared(has_bsn(text), _fold(text))


#: The hub's own strings (subscriber, purpose, legal basis, headers) repeat for every signal and
#: hold no personal data, so they may be remembered across signals.
_prepare_hub = functools.lru_cache(maxsize=1024)(_prepare)


def _prepare_key(text: str) -> _Prepared:
    """An agency's record key: a number only when the key is nothing else, else its digit runs
    one by one (``Z-2024-10000`` is a year and a sequence number, not nine digits)."""
    shadow = number_shadow(text)
    if _ONLY_A_NUMBER.fullmatch(shadow):
        found = has_bsn(shadow)
    else:
        found = any(
            (len(run) == 9 or (len(run) == 8 and run[0] != "0")) and is_bsn(run.zfill(9))
            for run in _DIGIT_RUN.findall(shadow)
        )
    return _Prepared(found, _fold(text))


def _strings(value: list[object] | tuple[object, ...] | dict[object, object]) -> list[str]:
    """The strings in a list, tuple or dict value, nested ones included."""
    items = value.values() if isinstance(value, dict) else value
    texts = [item for item in items if isinstance(item, str)]
    if len(texts) < len(items):  # nested values (the hub's own lists hold strings only)
        texts = []
        for item in items:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, _CONTAINERS):
                texts += _strings(item)
    return texts


# str.split() splits at exactly the characters ``\s`` matches in a str pattern (checked over every
# code point), so these equal ``re.sub(r"\s+", " ", text).strip()`` and ``re.sub(r"[\s.\-]+", "",
# text)`` of the case-folded text, at a third of the cost. Text that is not ASCII is brought to
# NFKC with ASCII digits first, so a full-width postcode or phone number matches its needle.
def _loose(text: str) -> str:
    return " ".join(_fold(text).split())


def _compact(text: str) -> str:
    return _compact_loose(_loose(text))


def _compact_loose(loose: str) -> str:
    """The compact form of a string already in loose form (one space is all it has left)."""
    return loose.replace(" ", "").replace(".", "").replace("-", "")


def _fold(text: str) -> str:
    if text.isascii():
        return text.casefold()
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    # Other digits are looked for among the characters outside ASCII only, cut out at C speed:
    # a pattern over the whole of a long text costs five times as much.
    others = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
    if _OTHER_DIGIT.search(others.decode("utf-8", "surrogatepass")):
        text = _OTHER_DIGIT.sub(lambda match: str(unicodedata.decimal(match.group(0))), text)
    return text.casefold()
