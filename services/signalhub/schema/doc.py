"""The generated part of ``docs/schemas.md``: the envelope and one table per signal type.

The catalogue is a static file a security officer can read without running anything; its tables
are rendered from the schemas so they cannot drift (a test compares them). Regenerate with
``python -m signalhub.schema.doc [SCHEMAS_DIR] [DOC]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from signalhub.schema.registry import SchemaRegistry
from signalhub.types import JSON, AvroSchema

__all__ = ["BEGIN", "END", "render_tables", "update_doc"]

BEGIN = "<!-- BEGIN GENERATED: python -m signalhub.schema.doc -->"
END = "<!-- END GENERATED -->"


def render_tables(registry: SchemaRegistry) -> str:
    """Markdown for the envelope and every signal type, in a stable order."""
    signals = list(registry.signals())
    if not signals:
        return ""
    envelope = next(f for f in signals[0].avro["fields"] if f["name"] == "envelope")["type"]
    lines = ["### Envelope (`nl.signalhub.Envelope`)", "", envelope.get("doc", ""), ""]
    lines += _table(envelope, with_metadata=False)
    for signal in signals:
        payload = next(f for f in signal.avro["fields"] if f["name"] == "payload")["type"]
        lines += [
            "",
            f"### `{signal.signal_type}` (v{signal.version})",
            "",
            f"{signal.avro.get('doc', '')}",
            "",
            f"Topic `{signal.topic}` · record `{signal.avro['name']}` · "
            f"fingerprint `{signal.fingerprint.hex()}`",
            "",
        ]
        lines += _table(payload, with_metadata=True)
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, registry: SchemaRegistry) -> bool:
    """Rewrite the generated section of ``doc``; True when it changed."""
    text = doc.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n\n{render_tables(registry)}\n{END}{tail}"
    if new == text:
        return False
    doc.write_text(new, encoding="utf-8")
    return True


def _table(record: AvroSchema, *, with_metadata: bool) -> list[str]:
    if with_metadata:
        rows = ["| field | type | pii | policy | description |", "|---|---|---|---|---|"]
    else:
        rows = ["| field | type | description |", "|---|---|---|"]
    for f in record["fields"]:
        kind = _type(f["type"])
        if "minimum" in f or "maximum" in f:
            kind += f" {f.get('minimum', '')}..{f.get('maximum', '')}"
        doc = str(f.get("doc", "")).replace("|", "\\|")
        if with_metadata:
            policy = "yes" if f.get("policy") else ""
            rows.append(f"| `{f['name']}` | {kind} | {f.get('pii') or ''} | {policy} | {doc} |")
        else:
            rows.append(f"| `{f['name']}` | {kind} | {doc} |")
    return rows


def _type(avro_type: JSON) -> str:
    if isinstance(avro_type, list):
        branches = [_type(t) for t in avro_type if t != "null"]
        optional = " \\| null" if "null" in avro_type else ""
        return " \\| ".join(branches) + optional
    if isinstance(avro_type, dict):
        if "logicalType" in avro_type:
            return str(avro_type["logicalType"])
        kind = avro_type["type"]
        if kind == "enum":
            short = str(avro_type["name"]).rpartition(".")[2]
            return f"enum {short} {{{', '.join(avro_type['symbols'])}}}"
        if kind == "array":
            return f"array<{_type(avro_type['items'])}>"
        if kind == "map":
            return f"map<{_type(avro_type['values'])}>"
        if kind == "record":
            return f"record {str(avro_type['name']).rpartition('.')[2]}"
        return str(kind)
    return str(avro_type)


def main(argv: list[str]) -> int:
    schemas = Path(argv[0]) if argv else Path("schemas")
    doc = Path(argv[1]) if len(argv) > 1 else Path("docs/schemas.md")
    changed = update_doc(doc, SchemaRegistry.from_dir(schemas))
    print(f"{doc}: {'updated' if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
