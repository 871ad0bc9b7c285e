"""The signal schemas: loaded once, addressed by signal type or fingerprint, projected into views.

Every decision the hub takes about a field (is it personal data, what kind, may a policy see it)
is read from the field's metadata in ``schemas/<type>.avsc``, never from lists in code:

- ``"pii": "<kind>"`` marks personal data (:data:`PII_KINDS`); the kind picks the pseudonym
  normalisation and tells the enforcer the field must be withheld or pseudonymised by default.
- ``"policy": true`` marks a non-personal field that is passed to the sharing policy.
- ``"hub_id": "<kind>"`` marks a string the hub made itself that is the same wherever it is
  delivered (a casework alert's ``bundle_id``); each subscriber receives it as the id of its
  pseudonym domain (:meth:`~signalhub.pseudonym.pseudonyms.Pseudonymiser.domain_id`), like the
  envelope's ``signal_id``, so it links no two domains.

The registry parses each schema exactly once (the envelope ``nl.signalhub.Envelope`` is defined in
``schemas/envelope.avsc`` and expanded into every signal schema) and keeps the parsed dicts that
the codec hands to fastavro, so nothing is re-parsed per record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint as _avro_fingerprint
from fastavro.schema import parse_schema, to_parsing_canonical_form

from signalhub.errors import SchemaError, UnknownSchemaError
from signalhub.schema.signal import FieldSpec, SignalSchema
from signalhub.schema.view import project_view
from signalhub.types import JSON, AvroSchema, Record

# FieldSpec and SignalSchema are defined in signalhub.schema.signal (the view projection needs
# them too) and handed out here, with the registry that builds them.
__all__ = [
    "ENVELOPE_NAME",
    "PII_KINDS",
    "FieldSpec",
    "SchemaRegistry",
    "SignalSchema",
    "age_band",
    "as_date",
    "expand_signal_schema",
    "fingerprint_of",
    "load_envelope",
    "policy_attributes",
]

ENVELOPE_NAME = "nl.signalhub.Envelope"
ENVELOPE_FILE = "envelope.avsc"
#: The kinds of personal data a field can be marked with (``"pii": kind``).
PII_KINDS = frozenset({"bsn", "name", "address", "postcode", "birth_date", "free_text", "phone"})
#: What a hub id kind may be called (it names the id in the keyed derivation, like a pii kind).
_HUB_ID_KIND = re.compile(r"[a-z][a-z0-9_]{0,30}")
#: (lowest age, band label), ordered; the band of an age is the last entry it reaches.
_AGE_BANDS = ((0, "0-11"), (12, "12-17"), (18, "18-22"), (23, "23-64"), (65, "65+"))
_EPOCH = date(1970, 1, 1)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read schema {path}: {exc} — fix the file") from exc


def load_envelope(schemas_dir: Path) -> AvroSchema:
    """The envelope as written in ``envelope.avsc`` (unparsed JSON)."""
    envelope: AvroSchema = _read_json(schemas_dir / ENVELOPE_FILE)
    return envelope


def expand_signal_schema(raw: AvroSchema, envelope: AvroSchema) -> AvroSchema:
    """A self-contained signal schema: the envelope reference replaced by its definition.

    This is the form the registry parses and fingerprints, and the form kept in
    ``schemas/released/`` so that a change to the envelope is seen as a change of every type.
    """
    named: dict[str, Any] = {}
    try:
        parse_schema(envelope, named, _write_hint=False)
        expanded = _parse(raw, named, expand=True)
    except SchemaError:
        raise
    except Exception as exc:  # fastavro raises several types for an invalid schema
        raise SchemaError(f"invalid Avro schema {raw.get('name')!r}: {exc} — fix the file") from exc
    return expanded


def _parse(
    schema: JSON, named: dict[str, Any] | None = None, *, expand: bool = False
) -> AvroSchema:
    """fastavro's parse_schema, narrowed to the record schemas the hub deals in."""
    parsed = parse_schema(schema, named, expand=expand, _write_hint=not expand)
    if not isinstance(parsed, dict):
        raise SchemaError(f"expected a record schema, got {str(parsed)[:40]!r} — fix the schema")
    return parsed


def fingerprint_of(schema: JSON) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, as the 8 bytes single-object encoding carries."""
    return bytes.fromhex(_avro_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _is_optional(avro_type: JSON) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def _payload_record(schema: AvroSchema) -> AvroSchema:
    for f in schema.get("fields", []):
        if f["name"] == "payload" and isinstance(f["type"], dict) and f["type"]["type"] == "record":
            payload: AvroSchema = f["type"]
            return payload
    raise SchemaError(f"{schema.get('name')}: no 'payload' record field — add one")


def _field_specs(signal_type: str, payload: AvroSchema) -> tuple[FieldSpec, ...]:
    specs = []
    for f in payload["fields"]:
        pii, policy = f.get("pii"), f.get("policy", False)
        where = f"{signal_type}.payload.{f['name']}"
        if pii is not None and pii not in PII_KINDS:
            raise SchemaError(f"{where}: unknown pii kind {pii!r} — use one of {sorted(PII_KINDS)}")
        if not isinstance(policy, bool):
            raise SchemaError(f"{where}: 'policy' must be true or false")
        if pii is not None and policy:
            raise SchemaError(f"{where}: a pii field cannot be policy-visible — drop 'policy'")
        hub_id = _hub_id(where, f, pii, policy)
        specs.append(FieldSpec(f["name"], f["type"], pii, policy, _is_optional(f["type"]), hub_id))
    return tuple(specs)


def _hub_id(where: str, f: AvroSchema, pii: str | None, policy: bool) -> str | None:
    """The field's hub id kind; only a plain string the hub made can be one."""
    kind = f.get("hub_id")
    if kind is None:
        return None
    if not isinstance(kind, str) or not _HUB_ID_KIND.fullmatch(kind):
        raise SchemaError(f"{where}: 'hub_id' must name the id's kind, e.g. \"bundle_id\"")
    if pii is not None or policy:
        raise SchemaError(f"{where}: a hub id is neither pii nor policy-visible — drop one")
    if f["type"] not in ("string", ["null", "string"]):
        raise SchemaError(f"{where}: a hub id must be a string — fix the type")
    return kind


def _build_signal(signal_type: str, expanded: AvroSchema) -> SignalSchema:
    version = expanded.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaError(f"{signal_type}: top-level 'version' must be an int >= 1 — add it")
    envelope = next((f for f in expanded["fields"] if f["name"] == "envelope"), None)
    if envelope is None or envelope["type"].get("name") != ENVELOPE_NAME:
        raise SchemaError(f"{signal_type}: first field must be 'envelope' of {ENVELOPE_NAME}")
    parsed = _parse(expanded)
    payload = _payload_record(parsed)
    return SignalSchema(
        signal_type, version, parsed, fingerprint_of(parsed), _field_specs(signal_type, payload)
    )


@dataclass
class _Entry:
    """A registered schema: the parsed writer schema and the schema its data is read into."""

    writer: AvroSchema
    reader: AvroSchema


class SchemaRegistry:
    """All schemas one process knows: signal schemas (current and released) and view schemas.

    Not locked: registration is idempotent and keyed by content, so a race only parses twice.
    """

    def __init__(self, signals: Iterable[SignalSchema] = ()) -> None:
        self._signals: dict[str, SignalSchema] = {}
        self._by_fp: dict[bytes, _Entry] = {}
        # id(schema object) -> (the object, kept alive so its id stays unique; fingerprint)
        self._by_id: dict[int, tuple[AvroSchema, bytes]] = {}
        self._views: dict[
            tuple[str, frozenset[str], frozenset[str], tuple[tuple[str, str], ...]], AvroSchema
        ] = {}
        for signal in signals:
            self._signals[signal.signal_type] = signal
            self._add(signal.avro, signal.fingerprint, signal.avro)

    @classmethod
    def from_dir(cls, path: Path) -> SchemaRegistry:
        """Load ``envelope.avsc`` and every ``<type>.avsc`` in ``path``.

        Released versions in ``path/released/`` are registered too, so records written with an
        older version still decode; they are read into the current schema (Avro resolution).
        """
        if not (path / ENVELOPE_FILE).is_file():
            raise SchemaError(f"no {ENVELOPE_FILE} in {path} — set SIGNALHUB_HOME to the checkout")
        envelope = load_envelope(path)
        signals = []
        for file in sorted(path.glob("*.avsc")):
            if file.name == ENVELOPE_FILE:
                continue
            signals.append(
                _build_signal(file.stem, expand_signal_schema(_read_json(file), envelope))
            )
        registry = cls(signals)
        for file in sorted((path / "released").glob("*.v*.avsc")):
            signal_type = file.name.split(".v", 1)[0]
            current = registry._signals.get(signal_type)
            if current is None:
                continue
            writer = _parse(_read_json(file))
            registry._add(writer, fingerprint_of(writer), current.avro)
        return registry

    def _add(self, writer: AvroSchema, fp: bytes, reader: AvroSchema) -> None:
        self._by_fp.setdefault(fp, _Entry(writer, reader))
        self._by_id[id(writer)] = (writer, fp)

    def signal_types(self) -> list[str]:
        return sorted(self._signals)

    def signals(self) -> Iterator[SignalSchema]:
        return (self._signals[t] for t in self.signal_types())

    def signal(self, signal_type: str) -> SignalSchema:
        try:
            return self._signals[signal_type]
        except (KeyError, TypeError):
            raise UnknownSchemaError(
                f"unknown signal type {str(signal_type)[:40]!r} — known: {self.signal_types()}"
            ) from None

    def by_fingerprint(self, fp: bytes) -> AvroSchema:
        """The parsed schema that wrote records with this fingerprint."""
        return self.resolve(fp)[0]

    def resolve(self, fp: bytes) -> tuple[AvroSchema, AvroSchema]:
        """(writer schema, reader schema) for a fingerprint; the reader is the current version."""
        entry = self._by_fp.get(bytes(fp))
        if entry is None:
            raise UnknownSchemaError(
                f"no schema with fingerprint {bytes(fp).hex()} — was it written by a newer hub? "
                "deploy the schema or route the record to the DLQ"
            )
        return entry.writer, entry.reader

    def register(self, schema: AvroSchema) -> bytes:
        """Parse (unless parsed) and register ``schema``; returns its fingerprint. Idempotent."""
        known = self._by_id.get(id(schema))
        if known is not None and known[0] is schema:
            return known[1]
        try:
            parsed = schema if schema.get("__fastavro_parsed") else _parse(schema)
        except SchemaError:
            raise
        except Exception as exc:
            raise SchemaError(f"invalid Avro schema: {exc} — fix the schema") from exc
        fp = fingerprint_of(parsed)
        self._add(parsed, fp, parsed)
        self._by_id[id(schema)] = (schema, fp)
        return fp

    def prepared(self, schema: AvroSchema) -> tuple[AvroSchema, bytes]:
        """The registered parsed form of ``schema`` and its fingerprint (registers if new)."""
        fp = self.register(schema)
        return self._by_fp[fp].writer, fp

    def view_schema(
        self,
        signal_type: str,
        clear: Iterable[str],
        pseudonymised: Iterable[str],
        generalised: Mapping[str, str] | None = None,
    ) -> AvroSchema:
        """The schema of what one subscriber receives: envelope, delivery, projected payload.

        Fields in ``pseudonymised`` become ``["null", "string"]`` (a pseudonym); a field in both
        sets is pseudonymised (the safer reading); names the schema lacks are ignored.
        ``generalised`` (``{field: method}``) fields are strings as well
        (:mod:`signalhub.enforcer.generalise`).
        """
        general = tuple(sorted((generalised or {}).items()))
        key = (signal_type, frozenset(clear), frozenset(pseudonymised), general)
        cached = self._views.get(key)
        if cached is not None:
            return cached
        projected = _parse(project_view(self.signal(signal_type), key[1], key[2], dict(general)))
        view = self._views[key] = self.by_fingerprint(self.register(projected))
        return view


def as_date(value: object) -> date | None:
    """A date from what a payload may hold (a date, a datetime, Avro days, ISO text), else None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _EPOCH + timedelta(days=value)
        except OverflowError:
            return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def age_band(birth: date, today: date) -> str | None:
    """The age band of someone born on ``birth``; None for a birth date in the future."""
    age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    if age < 0:
        return None
    return [label for lowest, label in _AGE_BANDS if age >= lowest][-1]


def policy_attributes(schema: SignalSchema, payload: Record, today: date) -> dict[str, JSON]:
    """The payload facts a policy may see: the ``policy: true`` fields, and age_band/minor.

    Never a pii value: the birth date itself is reduced to a band and a flag. When the schema
    has a birth date but the payload does not (or it is in the future), both are null.
    """
    attributes: dict[str, JSON] = {}
    birth_field = None
    for spec in schema.payload_fields:
        if spec.pii == "birth_date" and birth_field is None:
            birth_field = spec.name
        elif spec.policy and spec.pii is None:
            value = payload.get(spec.name)
            attributes[spec.name] = value.isoformat() if isinstance(value, date) else value
    if birth_field is not None:
        birth = as_date(payload.get(birth_field))
        band = age_band(birth, today) if birth is not None else None
        attributes["age_band"] = band
        attributes["minor"] = None if band is None else band in ("0-11", "12-17")
    return attributes
