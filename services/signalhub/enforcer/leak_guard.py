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

The signal's identifiers are prepared once per signal (:meth:`SignalIdentifiers.of`), as is each
string of the signal (most reach several deliveries unchanged); the hub's own strings (the
delivery block, headers) repeat across signals and are prepared once per process, so the check
stays cheap on the hot path. A finding names the field path and the rule, never the value.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from signalhub.enforcer.generalise import has_bsn, is_bsn, number_shadow
from signalhub.enforcer.projection import Projection, identifier_values
from signalhub.schema.registry import SignalSchema
from signalhub.types import Record
from signalhub.wire import DELIVERY_ID_HEADER, POLICY_VERSION_HEADER

__all__ = ["HUB_IDS", "Leak", "SignalIdentifiers", "scan_delivery", "scan_record"]

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
#: Fields holding an agency's record key rather than prose.
_KEYS = frozenset({"envelope.source_ref"})
_DIGIT_RUN = re.compile(r"[0-9]+")
#: A decimal digit of another script (``\d`` is every Unicode decimal digit in a str pattern).
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")
_ONLY_A_NUMBER = re.compile(r"[\s./_\-]*[0-9][\s./_\-0-9]*")


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

    @property
    def rule(self) -> str:
        return f"the {self.kind} of {self.source_field}"


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

    def prepared_key(self, text: str) -> _Prepared:
        """``text`` prepared as an agency's record key (see :func:`_prepare_key`)."""
        found = self._prepared.get("\0key\0" + text)
        if found is None:
            found = self._prepared["\0key\0" + text] = _prepare_key(text)
        return found


def scan_delivery(
    view_payload: Record, projection: Projection, identifiers: SignalIdentifiers
) -> list[Leak]:
    """Every identifier in ``view_payload`` the decision did not permit in clear; empty = safe.

    The payload only, findings named by the bare field name: the enforcer's call until it scans
    the whole record with :func:`scan_record`.
    """
    watched = _Watched.of(projection, identifiers)
    leaks: list[Leak] = []
    _scan_payload(view_payload, projection, identifiers, watched, "", leaks)
    return leaks


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
    watched = _Watched.of(projection, identifiers)
    leaks: list[Leak] = []
    hub: list[tuple[str, object]] = []
    for name, value in (record.get("envelope") or {}).items():
        path = "envelope." + name
        if path in _KEYS:
            _scan_field(path, value, identifiers.prepared_key, watched, leaks)
        else:
            hub.append((path, value))
    hub += [("delivery." + name, value) for name, value in (record.get("delivery") or {}).items()]
    hub += [("header " + name, bytes(raw).decode("utf-8", "replace")) for name, raw in headers]
    _scan_hub_fields(hub, watched, leaks)
    _scan_payload(record.get("payload") or {}, projection, identifiers, watched, "payload.", leaks)
    return leaks


def _scan_hub_fields(
    fields: list[tuple[str, object]], watched: _Watched, leaks: list[Leak]
) -> None:
    """The fields the hub fills (the envelope but its key, the delivery block, the headers):
    alike for every signal of a subscription, so they are read as one text, remembered across
    signals; only a finding in it is traced to its field."""
    texts: list[str] = []
    for path, value in fields:
        if isinstance(value, str):
            hub_id = HUB_IDS.get(path)
            if hub_id is None or not hub_id.fullmatch(value):
                texts.append(value)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            texts += value  # the withheld field names
        elif isinstance(value, list | tuple | dict):
            texts += _strings(value)
    # NUL separates: no identifier holds one, and it joins no digit groups.
    if not _findings(_prepare_hub("\0".join(texts)), watched):
        return
    for path, value in fields:
        _scan_field(path, value, _prepare_hub, watched, leaks)


def _findings(prepared: _Prepared, watched: _Watched) -> bool:
    return (
        prepared.has_bsn
        or any(needle in prepared.compact for needle, _ in watched.compact)
        or any(needle in prepared.loose for needle, _ in watched.loose)
    )


@dataclass(frozen=True)
class _Watched:
    """The signal's identifiers the decision did not disclose in clear (a BSN never is), as
    (normalised text, rule) pairs, split by the form of a string they are looked for in."""

    compact: tuple[tuple[str, str], ...]
    loose: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, projection: Projection, identifiers: SignalIdentifiers) -> _Watched:
        permitted = {
            needle.text
            for needle in identifiers.needles
            if needle.source_field in projection.clear and needle.kind != "bsn"
        }
        watched = [needle for needle in identifiers.needles if needle.text not in permitted]
        return cls(
            tuple((n.text, n.rule) for n in watched if n.compact),
            tuple((n.text, n.rule) for n in watched if not n.compact),
        )


def _scan_payload(
    payload: Record,
    projection: Projection,
    identifiers: SignalIdentifiers,
    watched: _Watched,
    prefix: str,
    leaks: list[Leak],
) -> None:
    skip = projection.pseudonymised
    for name, value in payload.items():
        if name not in skip:
            hub_id = HUB_IDS.get("payload." + name)
            _scan_field(prefix + name, value, identifiers.prepared, watched, leaks, hub_id)


def _scan_field(
    path: str,
    value: object,
    prepare: Callable[[str], _Prepared],
    watched: _Watched,
    leaks: list[Leak],
    hub_id: re.Pattern[str] | None = None,
) -> None:
    """Add the findings in one field; a hub id of its hub shape (:data:`HUB_IDS`) is not read."""
    if isinstance(value, str):
        texts: Iterable[str] = (value,)
    elif value is None or isinstance(value, int | float | datetime | date):
        return
    else:
        texts = _strings(value)
    hub_id = hub_id or HUB_IDS.get(path)
    for text in texts:
        if hub_id is not None and hub_id.fullmatch(text):
            continue
        prepared = prepare(text)
        if prepared.has_bsn:
            leaks.append(Leak(path, BSN_RULE))
        for needle, rule in watched.compact:
            if needle in prepared.compact:
                leaks.append(Leak(path, rule))
        for needle, rule in watched.loose:
            if needle in prepared.loose:
                leaks.append(Leak(path, rule))


def _prepare(text: str) -> _Prepared:
    if "pn1." in text:
        text = _PSEUDONYM_TOKEN.sub(" ", text)
    loose = _loose(text)
    return _Prepared(has_bsn(text), loose, _compact_loose(loose))


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
    loose = _loose(text)
    return _Prepared(found, loose, _compact_loose(loose))


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
    if _OTHER_DIGIT.search(text):
        text = _OTHER_DIGIT.sub(lambda match: str(unicodedata.decimal(match.group(0))), text)
    return text.casefold()
