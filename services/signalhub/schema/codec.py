"""Records to bytes and back: Avro single-object encoding, validated on the way in.

Framing (Avro specification, "single object encoding")::

    C3 01 | 8-byte CRC-64-AVRO fingerprint of the writer schema (little-endian) | Avro binary body

The fingerprint lets any reader find the writer schema in its :class:`SchemaRegistry` without a
schema-registry service. This runs once per record on the hot path, so it works only with the
registry's already-parsed schemas and validates with fastavro's compiled validator.

Error messages name the field path and what was wrong, never the value (it may be personal data).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError as _AvroValidationError
from fastavro.validation import validate

from signalhub.errors import DecodeError, UnknownSchemaError, ValidationError
from signalhub.schema.registry import SchemaRegistry, SignalSchema
from signalhub.types import AvroSchema, Record

__all__ = ["HEADER_LEN", "MAGIC", "decode", "encode", "validate_signal"]

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8

_Path = tuple[str, ...]
#: per fingerprint: record full name -> field path; (path, minimum, maximum); (path, field names)
_Plan = tuple[
    dict[str, str],
    tuple[tuple[_Path, int | None, int | None], ...],
    tuple[tuple[_Path, frozenset[str]], ...],
]
_PLANS: dict[bytes, _Plan] = {}


def encode(
    registry: SchemaRegistry, schema: AvroSchema, record: Record, *, trusted: bool = False
) -> bytes:
    """Validate ``record`` against ``schema`` and frame it; ValidationError names the field.

    ``trusted`` skips the validation, for records the hub built itself from a validated signal
    (views, audit entries): it was a fifth of the enforcer's core time. The writer still
    refuses a value of the wrong type (ValidationError) and never writes a key the schema lacks.
    """
    parsed, fp = registry.prepared(schema)
    if not trusted:
        _validate(parsed, fp, record)
    out = BytesIO()
    out.write(MAGIC)
    out.write(fp)
    try:
        schemaless_writer(out, parsed, record)
    except Exception as exc:  # validated above (or trusted): still the record's fault
        raise ValidationError(f"record cannot be encoded: {type(exc).__name__}") from exc
    return out.getvalue()


def decode(registry: SchemaRegistry, data: bytes) -> tuple[AvroSchema, Record]:
    """Unframe and read ``data``: (the schema it was read into, the record).

    Records written with a released older version are read into the current version (Avro
    resolution). DecodeError for anything that is not a well-formed frame and body;
    UnknownSchemaError for a fingerprint the registry does not hold.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_LEN or data[:2] != MAGIC:
        raise DecodeError(
            "not an Avro single-object record (no C3 01 marker or shorter than the header) — "
            "was it produced by a signalhub connector?"
        )
    writer, reader = registry.resolve(data[2:HEADER_LEN])
    body = BytesIO(data)
    body.seek(HEADER_LEN)
    try:
        record = schemaless_reader(body, writer, None if reader is writer else reader)
    except Exception as exc:  # fastavro raises EOFError, ValueError, OverflowError, ... on garbage
        raise DecodeError(f"corrupt Avro body: {type(exc).__name__}") from exc
    if body.tell() != len(data):
        raise DecodeError(f"{len(data) - body.tell()} trailing bytes after the Avro body")
    if not isinstance(record, dict):
        raise DecodeError("Avro body is not a record")
    return reader, record


def validate_signal(registry: SchemaRegistry, record: Record) -> SignalSchema:
    """Check ``record`` against the schema its ``envelope.signal_type`` names."""
    envelope = record.get("envelope") if isinstance(record, dict) else None
    if not isinstance(envelope, dict):
        raise ValidationError("envelope: missing or not a record")
    try:
        signal = registry.signal(envelope.get("signal_type"))  # type: ignore[arg-type]
    except UnknownSchemaError as exc:
        raise ValidationError(f"envelope.signal_type: {exc}") from None
    version = envelope.get("schema_version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or not 1 <= version <= signal.version
    ):
        raise ValidationError(
            f"envelope.schema_version: must be an int from 1 to {signal.version} "
            f"(the current {signal.signal_type} version)"
        )
    _validate(signal.avro, signal.fingerprint, record)
    return signal


def _validate(parsed: AvroSchema, fp: bytes, record: Record) -> None:
    plan = _PLANS.get(fp)
    if plan is None:
        plan = _PLANS[fp] = _make_plan(parsed)
    paths, ranges, records = plan
    # The raising mode builds an exception per rejected union branch (~7x slower on valid
    # records), so check cheaply first and ask for the details only when the record is bad.
    if not validate(record, parsed, raise_errors=False):
        try:
            validate(record, parsed, raise_errors=True)
        except _AvroValidationError as exc:
            raise ValidationError(_describe(exc, paths)) from None
        raise ValidationError("record does not match its schema")
    # fastavro ignores keys the schema lacks; refuse them, they are a mapping error upstream
    for path, names in records:
        value = _at(record, path)
        if isinstance(value, dict) and not names.issuperset(value):
            unknown = sorted(str(k) for k in set(value) - names)
            where = ".".join(path) or "record"
            raise ValidationError(f"{where}: fields {unknown} are not in the schema")
    for path, low, high in ranges:
        value = _at(record, path)
        if value is None:
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{'' if low is None else low}..{'' if high is None else high}"
            raise ValidationError(f"{'.'.join(path)}: out of range, allowed {bounds}")


def _at(record: Record, path: _Path) -> Any:
    value: Any = record
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _describe(exc: _AvroValidationError, paths: dict[str, str]) -> str:
    # fastavro reports one error per union branch; merge them into one line per field.
    expected: dict[str, list[object]] = {}
    datums: dict[str, object] = {}
    for error in exc.errors:
        record_name, _, name = str(error.field).rpartition(".")
        prefix = paths.get(record_name)
        where = str(error.field) if prefix is None else f"{prefix}.{name}" if prefix else name
        expected.setdefault(where, []).append(error.schema)
        datums[where] = error.datum
    problems = [
        f"{where}: {_what(datums[where], schemas[0] if len(schemas) == 1 else schemas)}"
        for where, schemas in expected.items()
    ]
    return "; ".join(problems) or "record does not match its schema"


def _what(datum: object, schema: object) -> str:
    if datum is None:
        return "required, but missing or null"
    expected = _type_name(schema)
    if isinstance(schema, dict) and schema.get("type") == "enum":
        return f"not one of the symbols {schema['symbols']}"
    if isinstance(schema, dict) and schema.get("type") == "record" and not isinstance(datum, dict):
        return f"expected a record, got {type(datum).__name__}"
    if expected == type(datum).__name__ or (expected in ("int", "long") and isinstance(datum, int)):
        return f"{expected} value out of the Avro {expected} range"
    return f"expected {expected}, got {type(datum).__name__}"


def _type_name(schema: object) -> str:
    if isinstance(schema, list):
        return " or ".join(_type_name(s) for s in schema)
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        return str(logical or schema.get("name") or schema.get("type"))
    return str(schema)


def _make_plan(parsed: AvroSchema) -> _Plan:
    """Walk the schema once: record names to field paths, and the declared numeric ranges."""
    paths: dict[str, str] = {}
    ranges: list[tuple[_Path, int | None, int | None]] = []
    records: list[tuple[_Path, frozenset[str]]] = []

    def walk(record: AvroSchema, path: _Path) -> None:
        paths[record["name"]] = ".".join(path)
        records.append((path, frozenset(f["name"] for f in record["fields"])))
        for f in record["fields"]:
            here = (*path, f["name"])
            if "minimum" in f or "maximum" in f:
                ranges.append((here, f.get("minimum"), f.get("maximum")))
            branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
            for branch in branches:
                if isinstance(branch, dict) and branch.get("type") == "record":
                    walk(branch, here)

    walk(parsed, ())
    return paths, tuple(ranges), tuple(records)
