"""Helpers shared by the connector tests: the shipped definitions, samples and a runner factory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from signalhub.config import project_root
from signalhub.connector import (
    CollectingPublisher,
    ConnectorDefinition,
    ConnectorRunner,
    RejectList,
    load_definitions,
)
from signalhub.schema.registry import SchemaRegistry

ROOT = project_root()
CONNECTORS = ROOT / "connectors"
SAMPLES = CONNECTORS / "samples"
FIXED_NOW = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)

#: One politie record as an agency system posts it to the ingest endpoint.
POLITIE_RECORD = {
    "bvh_nummer": "PL2300-2024000001",
    "incident_code": "F350",
    "pleegdatum": "14-03-2024 22:15",
    "bsn_verdachte": "111222333",
    "postcode": "6211 AB",
    "ernst": "2",
}

#: (connector, sample file) pairs shipped with the repository.
FILE_SAMPLES = [
    ("politie", "politie.csv"),
    ("gemeente", "gemeente.jsonl"),
    ("woningcorporatie", "woningcorporatie.csv"),
    ("schuldhulpverlening", "schuldhulpverlening.jsonl"),
    ("bewoners", "bewoners.jsonl"),
]


def registry() -> SchemaRegistry:
    return SchemaRegistry.from_dir(ROOT / "schemas")


def definitions() -> dict[str, ConnectorDefinition]:
    return load_definitions(CONNECTORS)


def manifest() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads((SAMPLES / "manifest.json").read_text())
    return loaded


def make_runner(
    name: str, *, max_record_bytes: int = 64 * 1024
) -> tuple[ConnectorRunner, CollectingPublisher, RejectList]:
    publisher, rejects = CollectingPublisher(), RejectList()
    runner = ConnectorRunner(
        definitions()[name],
        registry(),
        publisher,
        rejects=rejects,
        max_record_bytes=max_record_bytes,
        clock=lambda: FIXED_NOW,
    )
    return runner, publisher, rejects


def sample_path(file_name: str) -> Path:
    return SAMPLES / file_name
