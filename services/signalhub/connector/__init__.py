"""Agency connectors: read an agency's records, map them to signals, publish them.

The flow of one record: a :class:`Source` yields it, the :class:`Mapper` turns it into a signal
record as the agency's :class:`ConnectorDefinition` (``connectors/<agency>.toml``) says, the
:class:`ConnectorRunner` validates and encodes it and hands it to a :class:`Publisher`, or
writes a :class:`Reject` for the agency to fix. The HTTP ingest endpoint
(:func:`create_ingest_app`) feeds posted records through the same runner.

This ``__all__`` is the public surface; the submodules are internal.
"""

from __future__ import annotations

from signalhub.connector.definition import (
    ConnectorDefinition,
    SourceSpec,
    load_definition,
    load_definitions,
)
from signalhub.connector.ingest import create_ingest_app, ingest_routes, tokens_from_env
from signalhub.connector.mapping import Mapper, ObservedWindow, is_valid_bsn
from signalhub.connector.publisher import CollectingPublisher, KafkaPublisher, Publisher
from signalhub.connector.runner import (
    ConnectorRunner,
    Published,
    Reject,
    RejectFile,
    RejectList,
    RejectSink,
    RunReport,
    create_runners,
)
from signalhub.connector.sources import (
    CsvSource,
    JsonLinesSource,
    Source,
    SourceRecord,
    SqlTableSource,
    WatermarkStore,
    open_source,
)

__all__ = [
    "CollectingPublisher",
    "ConnectorDefinition",
    "ConnectorRunner",
    "CsvSource",
    "JsonLinesSource",
    "KafkaPublisher",
    "Mapper",
    "ObservedWindow",
    "Published",
    "Publisher",
    "Reject",
    "RejectFile",
    "RejectList",
    "RejectSink",
    "RunReport",
    "Source",
    "SourceRecord",
    "SourceSpec",
    "SqlTableSource",
    "WatermarkStore",
    "create_ingest_app",
    "create_runners",
    "ingest_routes",
    "is_valid_bsn",
    "load_definition",
    "load_definitions",
    "open_source",
    "tokens_from_env",
]
