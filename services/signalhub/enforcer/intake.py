"""Step 1 of the enforcer: a raw record off a signal topic, decoded and checked, or rejected.

A record is accepted only when it has a value within the size limit, decodes with a registered
schema of a known signal type (the record name of that type's current schema), and arrived on
that type's topic. Anything else raises :class:`RejectedRecordError` (a
:class:`~signalhub.errors.RecordError`) whose ``code`` is the dead-letter reason; the codec's own
:class:`~signalhub.errors.DecodeError` and :class:`~signalhub.errors.ValidationError` pass
through with theirs.
"""

from __future__ import annotations

from signalhub.enforcer.outputs import SourceRecord
from signalhub.errors import RecordError, UnknownSchemaError
from signalhub.schema.codec import decode
from signalhub.schema.registry import SchemaRegistry, SignalSchema
from signalhub.types import Record

__all__ = ["RejectedRecordError", "accept"]


class RejectedRecordError(RecordError):
    """A record the enforcer cannot process, with the reason code for the dead-letter topic."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def accept(
    registry: SchemaRegistry, record: SourceRecord, max_record_bytes: int
) -> tuple[SignalSchema, Record]:
    """The signal schema and decoded value of ``record``; :class:`RecordError` if it is not one."""
    if record.value is None:
        raise RejectedRecordError("empty", "the record has no value (tombstone)")
    if len(record.value) > max_record_bytes:
        raise RejectedRecordError(
            "oversized", f"{len(record.value)} bytes exceeds the limit of {max_record_bytes}"
        )
    try:
        writer, signal = decode(registry, record.value)
    except UnknownSchemaError as exc:
        raise RejectedRecordError("unknown_schema", str(exc)) from exc
    signal_type = str(signal.get("envelope", {}).get("signal_type", ""))
    try:
        schema = registry.signal(signal_type)
    except UnknownSchemaError as exc:
        raise RejectedRecordError("unknown_signal_type", str(exc)) from exc
    if writer.get("name") != schema.avro.get("name"):
        raise RejectedRecordError(
            "invalid", f"written with schema {writer.get('name')}, not a {signal_type} schema"
        )
    if record.topic != schema.topic:
        raise RejectedRecordError(
            "wrong_topic", f"a {signal_type} signal on {record.topic}; it belongs on {schema.topic}"
        )
    return schema, signal
