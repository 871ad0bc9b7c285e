"""Run a connector: read → map → validate → encode → publish, rejecting what does not fit.

The error policy of a connector lives in :meth:`ConnectorRunner.handle`, in one place:

- a :class:`~signalhub.errors.RecordError` (unparsable line, unmapped code, wrong type, schema
  violation) or an unknown schema → **reject** the record and go on with the next;
- an encoded signal larger than ``max_record_bytes`` → **reject** (the hub refuses it anyway);
- a :class:`~signalhub.errors.BrokerError` → **stop**: nothing after the last flush is
  committed, so the next run reads those records again (at least once);
- anything else is a bug and propagates.

A connector marked ``anonymous`` (reports from the public) screens each record first
(:mod:`signalhub.connector.screening`) and keeps no rejected record, only its reason.

A reject is the agency's own record, kept locally (a JSON Lines file readable only by its owner)
so the agency can fix and resend it. It is never logged: log lines carry the reference and the
reason code only.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from signalhub.connector.definition import ConnectorDefinition
from signalhub.connector.mapping import Clock, Mapper, ObservedWindow, utc_now
from signalhub.connector.publisher import Publisher
from signalhub.connector.screening import free_text_columns, screen_record
from signalhub.connector.sources import Source, SourceRecord
from signalhub.errors import DecodeError, RecordError, UnknownSchemaError
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import Record

__all__ = [
    "ConnectorRunner",
    "Published",
    "Reject",
    "RejectFile",
    "RejectList",
    "RejectSink",
    "RunReport",
    "create_runners",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reject:
    """A record the hub did not accept, with the reason, for the agency to fix."""

    agency: str
    source: str
    ref: str
    code: str
    reason: str
    #: The raw input as read (``{"text": ...}`` for a line that could not be parsed).
    record: Record

    def as_json(self) -> Record:
        return {
            "agency": self.agency,
            "source": self.source,
            "ref": self.ref,
            "code": self.code,
            "reason": self.reason,
            "record": self.record,
        }


@dataclass(frozen=True)
class Published:
    """A record that became a signal on ``topic``."""

    ref: str
    signal_id: str
    topic: str


@dataclass
class RunReport:
    """What one run did; the numbers add up: ``read == published + rejected``."""

    connector: str
    source: str
    read: int = 0
    published: int = 0
    rejected: int = 0
    signal_ids: list[str] = field(default_factory=list)
    published_by_topic: Counter[str] = field(default_factory=Counter)
    reject_codes: Counter[str] = field(default_factory=Counter)


class RejectSink(Protocol):
    def write(self, reject: Reject) -> None: ...


class RejectList:
    """Rejects kept in memory (ingest responses, tests, dry runs)."""

    def __init__(self) -> None:
        self.rejects: list[Reject] = []

    def write(self, reject: Reject) -> None:
        self.rejects.append(reject)


class RejectFile:
    """Rejects appended to a JSON Lines file created readable by its owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, reject: Reject) -> None:
        line = json.dumps(reject.as_json(), ensure_ascii=False, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(descriptor, 0o600)  # also a file an older version left readable to others
        # backslashreplace: a stray surrogate in a raw record must not lose the reject
        with os.fdopen(descriptor, "a", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(line)


class ConnectorRunner:
    """Drives one connector definition against a source, a publisher and a reject sink."""

    def __init__(
        self,
        definition: ConnectorDefinition,
        registry: SchemaRegistry,
        publisher: Publisher,
        *,
        rejects: RejectSink,
        max_record_bytes: int,
        clock: Clock = utc_now,
        window: ObservedWindow | None = None,
        commit_every: int = 500,
    ) -> None:
        self.definition = definition
        self._registry = registry
        self._mapper = Mapper(definition, registry, clock=clock, window=window)
        self._publisher = publisher
        self._rejects = rejects
        self._max_record_bytes = max_record_bytes
        self._commit_every = commit_every
        #: Free-text columns of an anonymous connector (scrubbed at intake); see screening.
        self._free_text = free_text_columns(definition, registry)

    def run(self, source: Source, *, commit: bool = True) -> RunReport:
        """Handle every record of ``source``; commit its position after each durable flush.

        ``commit=False`` (a dry run) leaves the source's position where it was.
        """
        report = RunReport(self.definition.name, source.name)
        uncommitted: Any = None
        pending = 0
        for item in source.read():
            self._count(report, self.handle(item, source.name))
            if item.position is not None:
                uncommitted, pending = item.position, pending + 1
            if pending >= self._commit_every:
                self._publisher.flush()
                if commit:
                    source.commit(uncommitted)
                pending = 0
        self._publisher.flush()
        if pending and commit:
            source.commit(uncommitted)
        logger.info(
            "connector %s source %s: read %d, published %d, rejected %d",
            report.connector,
            report.source,
            report.read,
            report.published,
            report.rejected,
        )
        return report

    def handle_records(self, records: Iterable[Record], source: str) -> list[Published | Reject]:
        """Map and publish a batch (the ingest endpoint's unit), flushed before returning."""
        outcomes = [
            self.handle(SourceRecord(f"{source}[{index}]", raw), source)
            for index, raw in enumerate(records)
        ]
        self._publisher.flush()
        return outcomes

    def handle(self, item: SourceRecord, source: str) -> Published | Reject:
        """The one place that decides: publish, or reject and go on (see the module doc)."""
        try:
            if item.raw is None:
                raise DecodeError(item.error or "unreadable record")
            raw = item.raw
            if self.definition.anonymous:
                raw = screen_record(raw, self.definition, self._free_text)
            schema, record = self._mapper.map(raw, item.ref)
            codec.validate_signal(self._registry, record)
            data = codec.encode(self._registry, schema.avro, record)
        except (RecordError, UnknownSchemaError) as exc:
            code = exc.code if isinstance(exc, RecordError) else "unknown_signal_type"
            return self._reject(item, source, code, str(exc))
        if len(data) > self._max_record_bytes:
            reason = (
                f"encoded signal is {len(data)} bytes, more than the {self._max_record_bytes} "
                "allowed — shorten the free text"
            )
            return self._reject(item, source, "oversized", reason)
        signal_id = record["envelope"]["signal_id"]
        self._publisher.publish(schema.topic, signal_id.encode(), data)
        return Published(item.ref, signal_id, schema.topic)

    def _reject(self, item: SourceRecord, source: str, code: str, reason: str) -> Reject:
        raw = item.raw if item.raw is not None else {"text": item.text}
        if self.definition.anonymous:  # a report from the public is not kept: it may hold a name
            raw = {}
        reject = Reject(self.definition.agency, source, item.ref, code, reason, raw)
        self._rejects.write(reject)
        logger.info("connector %s rejected %s: %s", self.definition.name, item.ref, code)
        return reject

    @staticmethod
    def _count(report: RunReport, outcome: Published | Reject) -> None:
        report.read += 1
        if isinstance(outcome, Published):
            report.published += 1
            report.signal_ids.append(outcome.signal_id)
            report.published_by_topic[outcome.topic] += 1
        else:
            report.rejected += 1
            report.reject_codes[outcome.code] += 1


def create_runners(
    definitions: Mapping[str, ConnectorDefinition],
    registry: SchemaRegistry,
    publisher: Publisher,
    *,
    rejects_dir: Path,
    max_record_bytes: int,
    window: ObservedWindow | None = None,
) -> dict[str, ConnectorRunner]:
    """One runner per definition, sharing a publisher, each rejecting to ``<name>.jsonl``.

    This is what the hub's HTTP service hands to :func:`~signalhub.connector.create_ingest_app`.
    """
    return {
        name: ConnectorRunner(
            definition,
            registry,
            publisher,
            rejects=RejectFile(rejects_dir / f"{name}.jsonl"),
            max_record_bytes=max_record_bytes,
            window=window,
        )
        for name, definition in definitions.items()
    }
