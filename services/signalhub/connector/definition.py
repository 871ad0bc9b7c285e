"""Connector definitions: one declarative TOML file per agency, read into frozen pydantic models.

Why declarative: an agency's vocabulary (its columns, incident codes and value lists) changes
more often than our code and is best reviewed by the people who know it. A definition says where
the agency's records come from (``[[sources]]``), how a record chooses its signal type
(``[dispatch]``: a code table, or one fixed ``signal_type``), when the situation was observed
(``[observed_at]``) and how columns become payload fields (``[fields]`` for every type,
``[types.<signal_type>]`` for one type). Unknown keys are refused, so a typo fails at load time
with the file and the key named instead of silently dropping a field.

A field mapping is either a column name (``subject_bsn = "bsn_verdachte"``) or a table::

    severity = { column = "ernst", type = "int" }
    category = { column = "categorie", values = { geluid = "noise", afval = "waste" } }
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from signalhub.errors import ConnectorError

__all__ = [
    "AGENCIES",
    "CodeEntry",
    "ConnectorDefinition",
    "Dispatch",
    "FieldMap",
    "ObservedAt",
    "SourceKind",
    "SourceSpec",
    "TypeMapping",
    "load_definition",
    "load_definitions",
]

#: The agencies that may report signals (``envelope.source_agency``).
AGENCIES = (
    "politie",
    "gemeente",
    "om",
    "reclassering",
    "woningcorporatie",
    "schuldhulpverlening",
    "jeugdzorg",
    "onderwijs",
    "zvh",
    "bewoners",
)

SourceKind = Literal["csv", "jsonl", "sql", "http"]
FieldKind = Literal[
    "str", "int", "amount", "bool", "date", "list", "bsn", "postcode", "postcode_area"
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class FieldMap(_Model):
    """How one payload field is filled from one agency column (or a nested JSON path)."""

    #: Column name; for JSON sources a dotted path (``betrokkene.bsn``) reaches into objects.
    column: str
    #: Conversion: ``amount`` takes "1.234,56" or 1234.56 and rounds to whole euros; ``bsn``
    #: checks the eleven test; ``postcode`` normalises to "1234 AB", ``postcode_area`` to its
    #: four digits ("6211 AB" -> "6211"); ``list`` splits on
    #: ``separator`` (a JSON array is taken as it is).
    type: FieldKind = "str"
    #: strptime formats tried in order for ``date`` (ISO 8601 is always tried last).
    formats: tuple[str, ...] = ()
    #: Agency value -> signal value (matched case-insensitively after trimming).
    values: dict[str, Any] | None = None
    #: Value used when the column is missing or empty.
    default: Any = None
    separator: str = ","

    @model_validator(mode="before")
    @classmethod
    def _column_shorthand(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data


class CodeEntry(_Model):
    """One code of the agency's code table: the signal type it means and the constants it sets."""

    signal_type: str
    label: str = ""
    constants: dict[str, Any] = Field(default_factory=dict, alias="set")


class Dispatch(_Model):
    """Chooses the signal type of a record from a code column (e.g. a police incident code)."""

    column: str
    codes: dict[str, CodeEntry]

    @model_validator(mode="after")
    def _codes_are_upper(self) -> Dispatch:
        # Codes are matched after upper-casing the record's value, so the table must be upper too.
        lower = [code for code in self.codes if code != code.strip().upper()]
        if lower:
            raise ValueError(f"dispatch codes must be upper case without spaces: {lower}")
        return self


class TypeMapping(_Model):
    """Fields and constants that apply to one signal type only (they win over ``[fields]``)."""

    fields: dict[str, FieldMap] = Field(default_factory=dict)
    constants: dict[str, Any] = Field(default_factory=dict, alias="set")


class ObservedAt(_Model):
    """Which column says when the situation was observed, and how to read it."""

    column: str
    formats: tuple[str, ...] = ()
    #: Local time zone of naive timestamps in the agency's data.
    timezone: str = "Europe/Amsterdam"


class SourceSpec(_Model):
    """One way the agency delivers records."""

    kind: SourceKind
    delimiter: str = ","
    encoding: str = "utf-8"
    #: Sample file (relative to the connectors directory) for demos and tests.
    sample: str | None = None
    #: SQL sources: the table to poll and its strictly increasing watermark column.
    table: str | None = None
    watermark_column: str | None = None
    batch_size: int = Field(default=500, ge=1, le=100_000)

    @model_validator(mode="after")
    def _sql_needs_table(self) -> SourceSpec:
        if self.kind == "sql":
            if not self.table or not self.watermark_column:
                raise ValueError("a sql source needs 'table' and 'watermark_column'")
            for name in (self.table, self.watermark_column):
                if not _IDENTIFIER.match(name):
                    raise ValueError(f"not a plain SQL identifier: {name!r}")
        return self


class ConnectorDefinition(_Model):
    """Everything the hub needs to turn one agency's records into signals."""

    name: str
    agency: Literal[
        "politie",
        "gemeente",
        "om",
        "reclassering",
        "woningcorporatie",
        "schuldhulpverlening",
        "jeugdzorg",
        "onderwijs",
        "zvh",
        "bewoners",
    ]
    title: str = ""
    #: Environment variable holding the bearer token for ``POST /ingest/<name>``.
    token_env: str | None = None
    #: Column whose value is the agency's own record key (``envelope.source_ref``); without
    #: one, the source position (file line, SQL watermark, array index) is used.
    key_column: str | None = None
    sources: tuple[SourceSpec, ...]
    #: Reports from the public (the residents' meldpunt): only the mapped columns are accepted,
    #: person identifiers are scrubbed or refused, and a rejected record is not kept (see
    #: :mod:`signalhub.connector.screening`).
    anonymous: bool = False
    #: Ingest requests one token may make per minute; more get 429 (None: no limit).
    requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    #: Either one fixed signal type, or a dispatch code table.
    signal_type: str | None = None
    dispatch: Dispatch | None = None
    observed_at: ObservedAt
    fields: dict[str, FieldMap] = Field(default_factory=dict)
    types: dict[str, TypeMapping] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_way_to_choose_a_type(self) -> ConnectorDefinition:
        if (self.signal_type is None) == (self.dispatch is None):
            raise ValueError("set exactly one of 'signal_type' and '[dispatch]'")
        if not self.sources:
            raise ValueError("a connector needs at least one [[sources]] entry")
        return self

    def source(self, kind: SourceKind) -> SourceSpec:
        """The source of this kind; ConnectorError when the agency does not deliver that way."""
        for spec in self.sources:
            if spec.kind == kind:
                return spec
        kinds = ", ".join(spec.kind for spec in self.sources)
        raise ConnectorError(
            f"connector {self.name!r} has no {kind} source (it has: {kinds}) — "
            f"add a [[sources]] kind = {kind!r} entry to {self.name}.toml or use another source"
        )

    def signal_types(self) -> list[str]:
        """Every signal type this connector can produce."""
        if self.dispatch is None:
            return [self.signal_type] if self.signal_type else []
        return sorted({entry.signal_type for entry in self.dispatch.codes.values()})


def load_definition(path: Path) -> ConnectorDefinition:
    """Read and check one definition file; ConnectorError names the file and the problem."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConnectorError(f"cannot read connector definition {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConnectorError(f"{path} is not valid TOML: {exc} — fix the file") from exc
    try:
        return ConnectorDefinition.model_validate(data)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConnectorError(f"{path} is not a valid connector definition — {problems}") from exc


def load_definitions(directory: Path) -> dict[str, ConnectorDefinition]:
    """Every ``*.toml`` definition in ``directory``, keyed by connector name."""
    if not directory.is_dir():
        raise ConnectorError(
            f"connector directory {directory} does not exist — set SIGNALHUB_HOME to the checkout"
        )
    definitions: dict[str, ConnectorDefinition] = {}
    for path in sorted(directory.glob("*.toml")):
        definition = load_definition(path)
        if definition.name in definitions:
            raise ConnectorError(f"two connector definitions are named {definition.name!r}")
        definitions[definition.name] = definition
    return definitions
