"""Where agency records come from: CSV and JSON Lines files, and SQL tables polled by watermark.

Every source yields :class:`SourceRecord` items: the raw record and its position (``file:line``,
``table@watermark``), or, for a line that cannot be parsed at all, the error instead of the record,
so the runner rejects it and reads on. Nothing here interprets the agency's vocabulary.

Why files are decoded with ``surrogateescape``: one byte that is not valid in the file's encoding
must cost one record, not the run. Such a byte is kept as a lone surrogate, the line or row that
holds it becomes a reject naming the line and the byte, and every other line is read as usual.
Why JSON depth is limited: a line nested thousands deep makes the parser recurse until it fails
for the whole run; a record deeper than :data:`MAX_JSON_DEPTH` is a reject instead.

Why ``commit``: a SQL source remembers how far it has read (its watermark) in a small SQLite
state file, but only when the runner says the records up to a position are safely published
(after the producer flushed). A crash between reading and publishing therefore re-reads those
rows (at least once) instead of losing them, and a normal restart reads no row twice, because
the watermark column must be strictly increasing (a serial id or a mutation sequence number).
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TextIO

from signalhub.config import Settings
from signalhub.connector.definition import ConnectorDefinition
from signalhub.errors import ConnectorError
from signalhub.types import Record

__all__ = [
    "MAX_JSON_DEPTH",
    "WATERMARK_FILE",
    "CsvSource",
    "JsonLinesSource",
    "Source",
    "SourceRecord",
    "SqlTableSource",
    "WatermarkStore",
    "holds_lone_surrogate",
    "json_depth",
    "open_source",
]

#: Name of the watermark state file in the hub's state directory.
WATERMARK_FILE = "connector-watermarks.sqlite"
_CSV_FIELD_LIMIT = 4 * 1024 * 1024  # oversized cells are rejected by size later, not by csv
#: Deepest nesting of objects and arrays accepted in one JSON record (agency records use 2-3).
MAX_JSON_DEPTH = 32
#: What ``surrogateescape`` turns an undecodable byte into (U+DC80..U+DCFF).
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep objects and arrays nest in ``text``, counted without parsing (no recursion).

    Counting stops once the depth passes ``limit``: the answer is then ``limit + 1``.
    """
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > limit:
            break
    return deepest


def holds_lone_surrogate(value: Any) -> bool:
    """True when a parsed JSON value holds ``"\\ud800"``-style escapes that are not text.

    JSON may escape half a surrogate pair; Python keeps it, and it fails later, when the signal
    id is hashed or the record encoded, for the whole run or batch instead of for this record.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _undecodable(text: str) -> str | None:
    """``byte 0xNN at character N`` for the first byte ``surrogateescape`` kept, or None."""
    found = _UNDECODABLE.search(text)
    if found is None:
        return None
    return f"byte 0x{ord(found.group()) - 0xDC00:02x} at character {found.start() + 1}"


def _encoding_reason(line: int, where: str, encoding: str) -> str:
    return (
        f"line {line}: not valid {encoding} text ({where}) — re-export the file as {encoding}, "
        "or set the source's encoding in the connector definition"
    )


def _printable(text: str, encoding: str) -> str:
    """``text`` with each undecodable byte written as ``\\xNN``, safe to store as UTF-8."""
    return text.encode(encoding, "surrogateescape").decode(encoding, "backslashreplace")


def _open_text(path: Path, encoding: str, newline: str | None = None) -> TextIO:
    """``path`` for reading, undecodable bytes kept as lone surrogates (see the module doc)."""
    try:
        return path.open(encoding=encoding, errors="surrogateescape", newline=newline)
    except OSError as exc:
        raise ConnectorError(f"cannot read {path}: {exc.strerror}") from exc
    except LookupError as exc:
        raise ConnectorError(
            f"cannot read {path}: unknown encoding {encoding!r} — fix the source's encoding "
            "in the connector definition"
        ) from exc


@dataclass(frozen=True)
class SourceRecord:
    """One record read from a source, or the reason it could not be read."""

    #: Where it came from: "politie.csv:12", "schuldsignalen@41"; the reject's ``ref``.
    ref: str
    raw: Record | None
    #: Why the record could not be parsed (no value quoted); set exactly when ``raw`` is None.
    error: str | None = None
    #: The unparsed text of a line that could not be parsed, kept for the agency's rejects file.
    text: str | None = None
    #: What to pass to :meth:`Source.commit` once this record is handled.
    position: Any = None


class Source(Protocol):
    """A stream of agency records with a way to remember what has been handled."""

    name: str

    def read(self) -> Iterator[SourceRecord]: ...

    def commit(self, position: Any) -> None: ...


class CsvSource:
    """A CSV export with a header row; line numbers are the physical lines of the file."""

    def __init__(self, path: Path, *, delimiter: str = ",", encoding: str = "utf-8") -> None:
        self.path = path
        self.name = path.name
        self._delimiter = delimiter
        self._encoding = encoding

    def read(self) -> Iterator[SourceRecord]:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
        with _open_text(self.path, self._encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=self._delimiter)
            try:
                header = [column.strip() for column in next(reader)]
            except (StopIteration, csv.Error) as exc:
                raise ConnectorError(f"{self.path} has no readable header row") from exc
            bad = _undecodable(self._delimiter.join(header))
            if bad is not None:
                raise ConnectorError(
                    f"{self.path}: the header row is not valid {self._encoding} text ({bad}) — "
                    f"re-export the file as {self._encoding}"
                )
            yield from self._records(reader, header)

    def _records(self, reader: Any, header: list[str]) -> Iterator[SourceRecord]:
        """Every row after the header; a row that cannot be read is a reject, never a stop."""
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # e.g. a NUL byte or a field over the size limit; the reader resumes after it
                yield SourceRecord(f"{self.name}:{start}", None, f"malformed CSV: {exc}")
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if any(cell.strip() for cell in row):
                yield self._record(f"{self.name}:{line}", line, header, row)

    def _record(self, ref: str, line: int, header: list[str], row: list[str]) -> SourceRecord:
        text = self._delimiter.join(row)
        for index, cell in enumerate(row):
            bad = _undecodable(cell)
            if bad is not None:
                column = header[index] if index < len(header) else f"#{index + 1}"
                where = f"column {column!r}, {bad}"
                reason = _encoding_reason(line, where, self._encoding)
                return SourceRecord(ref, None, reason, text=_printable(text, self._encoding))
        if len(row) != len(header):
            error = f"malformed CSV row: expected {len(header)} columns, got {len(row)}"
            return SourceRecord(ref, None, error, text=text)
        return SourceRecord(ref, dict(zip(header, row, strict=True)))

    def commit(self, position: Any) -> None:
        """Files are read whole every run; there is nothing to remember."""


class JsonLinesSource:
    """One JSON object per line; a line that is not a JSON object is a reject, not a stop."""

    def __init__(self, path: Path, *, encoding: str = "utf-8") -> None:
        self.path = path
        self.name = path.name
        self._encoding = encoding

    def read(self) -> Iterator[SourceRecord]:
        with _open_text(self.path, self._encoding) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield self._record(f"{self.name}:{number}", number, line.rstrip("\r\n"))

    def _record(self, ref: str, number: int, line: str) -> SourceRecord:
        bad = _undecodable(line)
        if bad is not None:
            reason = _encoding_reason(number, bad, self._encoding)
            return SourceRecord(ref, None, reason, text=_printable(line, self._encoding))
        if json_depth(line) > MAX_JSON_DEPTH:
            error = f"JSON nested more than {MAX_JSON_DEPTH} levels deep — flatten the record"
            return SourceRecord(ref, None, error, text=line)
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            error = f"malformed JSON: {exc.msg} at column {exc.colno}"
            return SourceRecord(ref, None, error, text=line)
        if not isinstance(value, dict):
            error = f"expected a JSON object, got {type(value).__name__}"
            return SourceRecord(ref, None, error, text=line)
        if holds_lone_surrogate(value):
            error = (
                f"line {number}: a string escapes half a surrogate pair, which is not Unicode "
                "text — write the character itself"
            )
            return SourceRecord(ref, None, error, text=line)
        return SourceRecord(ref, value)

    def commit(self, position: Any) -> None:
        """Files are read whole every run; there is nothing to remember."""


class WatermarkStore:
    """The last committed watermark per (connector, table), in a small SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path)
            connection.execute(
                "CREATE TABLE IF NOT EXISTS watermark ("
                " connector TEXT NOT NULL, source TEXT NOT NULL, value TEXT NOT NULL,"
                " PRIMARY KEY (connector, source))"
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConnectorError(
                f"cannot open the watermark state file {self.path}: {exc} — "
                "check the state directory (SIGNALHUB_STATE_DIR) is writable"
            ) from exc
        return connection

    def get(self, connector: str, source: str) -> Any:
        """The committed watermark, or None before the first commit.

        Reading creates nothing: a dry run leaves no state file behind.
        """
        if not self.path.exists():
            return None
        with contextlib.closing(self._connect()) as connection:
            row = connection.execute(
                "SELECT value FROM watermark WHERE connector = ? AND source = ?",
                (connector, source),
            ).fetchone()
        return None if row is None else _decode_watermark(row[0])

    def set(self, connector: str, source: str, value: Any) -> None:
        with contextlib.closing(self._connect()) as connection, connection:
            connection.execute(
                "INSERT INTO watermark (connector, source, value) VALUES (?, ?, ?)"
                " ON CONFLICT (connector, source) DO UPDATE SET value = excluded.value",
                (connector, source, _encode_watermark(value)),
            )


def _encode_watermark(value: Any) -> str:
    """Keep the watermark's type, so the next query compares like with like."""
    if isinstance(value, bool):
        raise ConnectorError("a boolean column cannot be a watermark")
    if isinstance(value, int):
        return json.dumps({"int": value})
    if isinstance(value, datetime):
        return json.dumps({"datetime": value.isoformat()})
    if isinstance(value, date):
        return json.dumps({"date": value.isoformat()})
    if isinstance(value, Decimal | float):
        return json.dumps({"decimal": str(value)})
    return json.dumps({"str": str(value)})


def _decode_watermark(text: str) -> Any:
    ((kind, value),) = json.loads(text).items()
    if kind == "int":
        return int(value)
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    return str(value)


class SqlTableSource:
    """Polls a table for rows above the committed watermark, oldest first, in batches.

    ``url`` is ``postgresql://...`` (psycopg) or ``sqlite:///path`` (the sample database).
    Table and column names come from the connector definition, which only allows plain
    identifiers, so they can be quoted into the query; values are always bound parameters.
    """

    def __init__(
        self,
        url: str,
        *,
        connector: str,
        table: str,
        watermark_column: str,
        store: WatermarkStore,
        batch_size: int = 500,
    ) -> None:
        if not (url.startswith(("postgresql://", "postgres://")) or url.startswith("sqlite:///")):
            raise ConnectorError(
                "a SQL source URL must start with postgresql:// or sqlite:/// — fix --source"
            )
        self.url = url
        self.name = table
        self._connector = connector
        self._table = table
        self._column = watermark_column
        self._store = store
        self._batch_size = batch_size

    def read(self) -> Iterator[SourceRecord]:
        """Every row above the committed watermark, once per run (commit moves the mark)."""
        watermark = self._store.get(self._connector, self._table)
        while True:
            rows = self._fetch(watermark)
            for row in rows:
                watermark = row[self._column]
                yield SourceRecord(f"{self._table}@{watermark}", row, position=watermark)
            if len(rows) < self._batch_size:
                return

    def commit(self, position: Any) -> None:
        self._store.set(self._connector, self._table, position)

    def _query(self, placeholder: str, since: bool) -> str:
        table = ".".join(f'"{part}"' for part in self._table.split("."))
        column = f'"{self._column}"'
        where = f" WHERE {column} > {placeholder}" if since else ""
        return f"SELECT * FROM {table}{where} ORDER BY {column} LIMIT {self._batch_size}"  # noqa: S608

    def _fetch(self, watermark: Any) -> list[Record]:
        params: tuple[Any, ...] = () if watermark is None else (watermark,)
        if self.url.startswith("sqlite:///"):
            return self._fetch_sqlite(self._query("?", watermark is not None), params)
        return self._fetch_postgres(self._query("%s", watermark is not None), params)

    def _fetch_sqlite(self, query: str, params: tuple[Any, ...]) -> list[Record]:
        path = self.url.removeprefix("sqlite:///")
        if not Path(path).exists():
            raise ConnectorError(f"SQLite database {path} does not exist — check --source")
        try:
            with contextlib.closing(sqlite3.connect(path)) as connection:
                connection.row_factory = sqlite3.Row
                return [dict(row) for row in connection.execute(query, params).fetchall()]
        except sqlite3.Error as exc:
            raise ConnectorError(
                f"cannot read table {self._table!r} from SQLite: {exc} — check the table and "
                "watermark column in the connector definition"
            ) from exc

    def _fetch_postgres(self, query: str, params: tuple[Any, ...]) -> list[Record]:
        import psycopg  # the driver is only needed for PostgreSQL sources
        from psycopg.rows import dict_row

        try:
            with psycopg.connect(self.url, row_factory=dict_row, connect_timeout=10) as connection:
                return list(connection.execute(query, params).fetchall())
        except psycopg.Error as exc:
            raise ConnectorError(
                f"cannot read table {self._table!r} from PostgreSQL: {type(exc).__name__} — "
                "check the URL, the server and the table named in the connector definition"
            ) from exc


def open_source(definition: ConnectorDefinition, location: str, state: Path | Settings) -> Source:
    """The source ``location`` names, read the way ``definition`` says that kind is delivered.

    ``postgresql://...``, ``sqlite:///path`` and a ``*.sqlite``/``*.db`` file are SQL tables
    (table and watermark column from the definition); ``*.csv`` and ``*.jsonl``/``*.ndjson`` are
    files. ``state`` is the watermark file, or the settings whose state directory holds
    ``connector-watermarks.sqlite``.
    """
    if isinstance(state, Settings):
        state = state.state_dir / WATERMARK_FILE
    if Path(location).suffix.lower() in (".sqlite", ".db") and "://" not in location:
        location = f"sqlite:///{location}"
    if location.startswith(("postgresql://", "postgres://", "sqlite:///")):
        spec = definition.source("sql")
        # Both are set on every sql source (checked when the definition was loaded).
        return SqlTableSource(
            location,
            connector=definition.name,
            table=str(spec.table),
            watermark_column=str(spec.watermark_column),
            store=WatermarkStore(state),
            batch_size=spec.batch_size,
        )
    path = Path(location)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        spec = definition.source("csv")
        return CsvSource(path, delimiter=spec.delimiter, encoding=spec.encoding)
    if suffix in (".jsonl", ".ndjson"):
        spec = definition.source("jsonl")
        return JsonLinesSource(path, encoding=spec.encoding)
    raise ConnectorError(
        f"cannot tell what kind of source {path.name!r} is — use a .csv or .jsonl file, "
        "or a postgresql:// or sqlite:/// URL"
    )
