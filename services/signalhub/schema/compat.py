"""Schema evolution guard: a schema change must stay fully compatible with every released version.

Every released version of a signal schema is kept, self-contained (envelope expanded), as
``schemas/released/<type>.v<N>.avsc``. Data written with any of them may still sit on a topic, and
subscribers may still read with them, so the current schema must read data written with each
released version *and* each released version must read data written with the current one (Avro
"full" compatibility). fastavro resolves schemas but has no checker, so the Avro resolution rules
are implemented here over the expanded schemas:

- a reader field missing from the writer needs a default (so: added fields need defaults, and a
  removed field needs a default in the versions that still have it);
- types must match, except the promotions int->long/float/double, long->float/double,
  float->double, string<->bytes; a changed logical type is refused (it changes meaning);
- an enum may only lose symbols when the reading side has a default symbol;
- records, enums and fixed types keep their (unqualified) name; a fixed keeps its size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastavro.schema import parse_schema
from fastavro.validation import validate

from signalhub.errors import SchemaError, UnknownSchemaError
from signalhub.schema.registry import ENVELOPE_FILE, expand_signal_schema, load_envelope
from signalhub.types import JSON, AvroSchema
from signalhub.wire import canonical_json

__all__ = [
    "check_compatibility",
    "current_schemas",
    "release",
    "released_schemas",
    "resolution_problems",
]

RELEASED_DIR = "released"
#: (writer type, reader type) pairs Avro resolves by promotion.
_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


def current_schemas(schemas_dir: Path) -> dict[str, AvroSchema]:
    """The current schema of every signal type, self-contained (envelope expanded)."""
    envelope = load_envelope(schemas_dir)
    current = {}
    for file in sorted(schemas_dir.glob("*.avsc")):
        if file.name != ENVELOPE_FILE:
            current[file.stem] = expand_signal_schema(_read(file), envelope)
    return current


def released_schemas(schemas_dir: Path) -> dict[str, dict[int, AvroSchema]]:
    """signal type -> version -> the released schema, from ``released/<type>.v<N>.avsc``."""
    released: dict[str, dict[int, AvroSchema]] = {}
    for file in sorted((schemas_dir / RELEASED_DIR).glob("*.v*.avsc")):
        signal_type, _, number = file.name.removesuffix(".avsc").rpartition(".v")
        if not number.isdigit():
            raise SchemaError(f"{file}: name must be <type>.v<N>.avsc — rename it")
        schema = _normalise(_read(file))
        if schema.get("version") != int(number):
            raise SchemaError(f"{file}: 'version' inside is not {number} — restore the file")
        released.setdefault(signal_type, {})[int(number)] = schema
    return released


def check_compatibility(schemas_dir: Path) -> list[str]:
    """Every problem with the current schemas, as ``"<type>: <problem> — <what to do>"``."""
    current, released = current_schemas(schemas_dir), released_schemas(schemas_dir)
    problems: list[str] = []
    for signal_type in sorted(set(current) | set(released)):
        problems += _check_type(
            signal_type, current.get(signal_type), released.get(signal_type, {})
        )
    return problems


def release(schemas_dir: Path, signal_type: str) -> Path:
    """Keep the current schema of ``signal_type`` as a released version; returns its path.

    Refused (SchemaError) while the schema is incompatible or changed without a version bump.
    Releasing an already released, unchanged version is a no-op.
    """
    current = current_schemas(schemas_dir).get(signal_type)
    if current is None:
        raise UnknownSchemaError(f"{signal_type}: no schemas/{signal_type}.avsc — check the name")
    previous = released_schemas(schemas_dir).get(signal_type, {})
    problems = _check_type(signal_type, current, previous) if previous else []
    if problems:
        raise SchemaError("; ".join(problems))
    version = current["version"]
    path = schemas_dir / RELEASED_DIR / f"{signal_type}.v{version}.avsc"
    if version not in previous:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def resolution_problems(reader: JSON, writer: JSON, path: str = "") -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty: it can).

    Both are expanded schemas (every named type defined inline, as in released files).
    """
    if isinstance(writer, list):
        problems: list[str] = []
        for branch in writer:
            if isinstance(reader, list):
                if not any(not resolution_problems(r, branch, path) for r in reader):
                    problems.append(
                        f"{_at(path)}union branch {_name(branch)} has no match in {_name(reader)}"
                    )
            else:
                problems += resolution_problems(reader, branch, path)
        return problems
    if isinstance(reader, list):
        if any(not resolution_problems(r, writer, path) for r in reader):
            return []
        return [f"{_at(path)}{_name(writer)} matches no branch of {_name(reader)}"]
    reader_kind, writer_kind = _kind(reader), _kind(writer)
    if _logical(reader) != _logical(writer):
        return [f"{_at(path)}logical type changed from {_logical(writer)} to {_logical(reader)}"]
    if reader_kind != writer_kind:
        if (writer_kind, reader_kind) in _PROMOTIONS:
            return []
        return [f"{_at(path)}type changed from {writer_kind} to {reader_kind}"]
    if reader_kind in ("record", "enum", "fixed") and _short(reader) != _short(writer):
        return [f"{_at(path)}{reader_kind} renamed from {_short(writer)} to {_short(reader)}"]
    if reader_kind == "record":
        return _record_problems(reader, writer, path)
    if reader_kind == "enum":
        lost = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if lost and "default" not in reader:
            return [f"{_at(path)}enum symbols {lost} unknown to the reader, which has no default"]
    if reader_kind == "fixed" and reader["size"] != writer["size"]:
        return [f"{_at(path)}fixed size changed from {writer['size']} to {reader['size']}"]
    if reader_kind == "array":
        return resolution_problems(reader["items"], writer["items"], f"{path}[]")
    if reader_kind == "map":
        return resolution_problems(reader["values"], writer["values"], f"{path}{{}}")
    return []


def _record_problems(reader: AvroSchema, writer: AvroSchema, path: str) -> list[str]:
    written = {f["name"]: f for f in writer["fields"]}
    problems: list[str] = []
    for field in reader["fields"]:
        where = f"{path}.{field['name']}" if path else field["name"]
        names = [field["name"], *field.get("aliases", [])]
        source = next((written[n] for n in names if n in written), None)
        if source is not None:
            problems += resolution_problems(field["type"], source["type"], where)
        elif "default" not in field:
            problems.append(f"{where}: not in the written data and has no default")
        elif not _default_fits(field["type"], field["default"]):
            problems.append(f"{where}: default does not match the field's (first) type")
    return problems


def _default_fits(avro_type: JSON, default: Any) -> bool:
    first = avro_type[0] if isinstance(avro_type, list) else avro_type
    try:
        return bool(validate(default, parse_schema(first), raise_errors=False))
    except Exception:  # an unparsable type cannot hold the default either
        return False


def _check_type(
    signal_type: str, current: AvroSchema | None, released: dict[int, AvroSchema]
) -> list[str]:
    if current is None:
        return [
            f"{signal_type}: released as v{max(released)} but schemas/{signal_type}.avsc is "
            "missing — restore it (a released type is never removed)"
        ]
    if not released:
        return [f"{signal_type}: never released — run `signalhub schemas release {signal_type}`"]
    missing = sorted(set(range(1, max(released) + 1)) - set(released))
    if missing:
        lost = ", ".join(f"v{number}" for number in missing)
        return [
            f"{signal_type}: released {lost} missing from schemas/released/ — restore it: data "
            "written with every released version must stay readable"
        ]
    version, newest = current.get("version"), max(released)
    if not isinstance(version, int) or isinstance(version, bool):
        return [
            f'{signal_type}: no int "version" at the top of the schema — add "version": {newest}'
        ]
    if version < newest:
        return [
            f"{signal_type}: version {version} is older than released v{newest} — "
            f'set "version" to {newest + 1} for a change, or restore v{newest}'
        ]
    if version in released and canonical_json(current) != canonical_json(released[version]):
        return [
            f"{signal_type}: changed without bumping version {version} — "
            f'set "version": {newest + 1} and run `signalhub schemas release {signal_type}`'
        ]
    problems = []
    for number, old in sorted(released.items()):
        for problem in resolution_problems(current, old):
            problems.append(
                f"{signal_type}: cannot read data written with v{number}: {problem} — "
                "give the field a default or undo the change"
            )
        for problem in resolution_problems(old, current):
            problems.append(
                f"{signal_type}: v{number} readers cannot read data written now: {problem} — "
                "give the field a default or undo the change"
            )
    return problems


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read {path}: {exc} — fix the file") from exc


def _normalise(schema: AvroSchema) -> AvroSchema:
    try:
        normal = parse_schema(schema, expand=True, _write_hint=False)
    except Exception as exc:
        raise SchemaError(f"invalid released schema {schema.get('name')!r}: {exc}") from exc
    if not isinstance(normal, dict):
        raise SchemaError(f"released schema {schema!r:.40} is not a record — restore the file")
    return normal


def _kind(schema: JSON) -> str:
    return str(schema["type"]) if isinstance(schema, dict) else str(schema)


def _logical(schema: JSON) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _short(schema: AvroSchema) -> str:
    return str(schema.get("name", "")).rpartition(".")[2]


def _name(schema: JSON) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_name(s) for s in schema) + "]"
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("name") or schema["type"])
    return str(schema)


def _at(path: str) -> str:
    return f"{path}: " if path else ""
