"""Screening of reports from the public: places and patterns, never a person.

A connector marked ``anonymous = true`` (the residents' meldpunt, ``connectors/bewoners.toml``)
takes reports from people the hub does not know and may not identify. Before such a record is
mapped, :func:`screen_record` decides, in this order:

1. **A column the definition does not map is refused.** A column whose name says it holds a
   person or the reporter (``naam``, ``email``, ``telefoon``, ``bsn``, ``ip``, ``melder``, ...)
   is refused with code ``person_data``; any other unknown column with ``invalid``. So a
   reporter's name, e-mail address or IP address cannot ride along in an extra field.
2. **A structured field holding a person identifier is refused** (``person_data``): a BSN
   however written (:func:`~signalhub.enforcer.generalise.find_bsns`), a phone number or an
   e-mail address in the street, the postcode area or a code has no innocent reading there.
3. **Free text is scrubbed, not refused:** in the columns mapped to ``pii: free_text`` fields,
   every BSN, phone number and e-mail address is replaced by ``[withheld]``. Residents type
   these without thinking ("call me on 06..."); the rest of the report is still worth having.
   A name cannot be found reliably in free text, so the free text stays personal data as a
   whole: the policy withholds it unless an agreement with a legal basis lists it.

A refused record is not kept either: the runner writes the reason and an empty record to its
reject sink (the report may hold exactly what it was refused for). Reasons quote column names
only when they are plain words, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from signalhub.connector.definition import ConnectorDefinition
from signalhub.enforcer.generalise import WITHHELD_MARK, find_bsns, number_shadow
from signalhub.errors import PersonDataError, ValidationError
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import Record

__all__ = ["find_contacts", "free_text_columns", "screen_record", "scrub_report_text"]

#: Parts of a column name that say it holds a person or the reporter (compared without
#: case, spaces, dashes and underscores).
_PERSON_WORDS = (
    "naam", "name", "mail", "telefoon", "phone", "mobiel", "mobile", "bsn", "burgerservice",
    "geboorte", "birth", "melder", "reporter", "contact", "ipadres", "ipaddress", "adres",
    "address", "useragent",
)  # fmt: skip
_PERSON_COLUMNS = frozenset({"ip", "tel", "gsm"})
_SEP = r"[\s./()\-]*"
#: Dutch phone numbers as written, on the digit shadow of the text: 06-12345678,
#: +31 6 1234 5678, 0031 43 350 1234, (043) 350 12 34.
_PHONE = re.compile(
    rf"(?<![0-9A-Za-z])(?:(?:\+|00)31{_SEP}(?:\(0\){_SEP})?|\(?0)[1-9](?:{_SEP}[0-9]){{8}}(?![0-9])"
)
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")
_PLAIN_NAME = re.compile(r"^[A-Za-z_. \-]{1,40}$")


def find_contacts(text: str) -> list[tuple[int, int]]:
    """The spans of BSNs, phone numbers and e-mail addresses in ``text``, sorted, merged."""
    shadow = number_shadow(text)
    spans = [(m.start, m.end) for m in find_bsns(text)]
    spans += [match.span() for match in _PHONE.finditer(shadow)]
    spans += [match.span() for match in _EMAIL.finditer(text)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def scrub_report_text(text: str) -> str:
    """``text`` with every BSN, phone number and e-mail address replaced by ``[withheld]``."""
    parts: list[str] = []
    end = 0
    for start, stop in find_contacts(text):
        parts += (text[end:start], WITHHELD_MARK)
        end = stop
    parts.append(text[end:])
    return "".join(parts)


def free_text_columns(definition: ConnectorDefinition, registry: SchemaRegistry) -> frozenset[str]:
    """The columns the definition maps to ``pii: free_text`` fields (scrubbed, not refused)."""
    columns: set[str] = set()
    for signal_type in definition.signal_types():
        schema = registry.signal(signal_type)
        free = {spec.name for spec in schema.payload_fields if spec.pii == "free_text"}
        specific = definition.types.get(signal_type)
        maps = {**definition.fields, **(specific.fields if specific else {})}
        columns |= {field_map.column for name, field_map in maps.items() if name in free}
    return frozenset(columns)


def screen_record(
    raw: Mapping[str, Any], definition: ConnectorDefinition, free_text: frozenset[str]
) -> Record:
    """The record to map, with free text scrubbed; PersonDataError or ValidationError when it
    carries a column it may not, or a person identifier in a structured field."""
    _refuse_unknown_columns(raw, _mapped_columns(definition))
    screened: Record = {}
    for column, value in raw.items():
        if isinstance(value, str) and column in free_text:
            screened[column] = scrub_report_text(value)
            continue
        if isinstance(value, str) and find_contacts(value):
            raise PersonDataError(
                f"column {_shown(column)} holds what looks like a BSN, a phone number or an "
                "e-mail address — a report names places and patterns, never a person; "
                "leave it out"
            )
        screened[column] = value
    return screened


def _mapped_columns(definition: ConnectorDefinition) -> frozenset[str]:
    """The top-level columns the definition reads (a dotted path counts by its first part)."""
    columns = [field_map.column for field_map in definition.fields.values()]
    for mapping in definition.types.values():
        columns += [field_map.column for field_map in mapping.fields.values()]
    columns.append(definition.observed_at.column)
    if definition.key_column:
        columns.append(definition.key_column)
    if definition.dispatch is not None:
        columns.append(definition.dispatch.column)
    return frozenset(column.split(".")[0] for column in columns)


def _refuse_unknown_columns(raw: Mapping[str, Any], mapped: frozenset[str]) -> None:
    unknown = [str(column) for column in raw if column not in mapped]
    person = [column for column in unknown if _names_a_person(column)]
    if person:
        raise PersonDataError(
            f"field(s) {_listed(person)} would name a person or the reporter — a report names "
            "places and patterns only, and the reporter stays anonymous; leave them out"
        )
    if unknown:
        raise ValidationError(
            f"field(s) {_listed(unknown)} are not part of a report — send only the fields of "
            "the meldpunt (docs/connectors.md)"
        )


def _names_a_person(column: str) -> bool:
    folded = re.sub(r"[\s_\-.]", "", column.casefold())
    return folded in _PERSON_COLUMNS or any(word in folded for word in _PERSON_WORDS)


def _shown(column: str) -> str:
    """A column name as a reason may quote it: only plain words (a key could hold a BSN)."""
    return repr(column) if _PLAIN_NAME.match(column) else "(a field whose name is not shown)"


def _listed(columns: Iterable[str]) -> str:
    return ", ".join(sorted(_shown(column) for column in columns))
