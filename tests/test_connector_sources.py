"""Sources: file line numbers, unparsable lines, and SQL polling that resumes at its watermark.

The SQL tests run against a real SQLite file and a real PostgreSQL (127.0.0.1:5432, database
``test``, user ``postgres``); the PostgreSQL ones skip when that server does not answer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from connectors.sample_data import load_sql_sample, sql_rows

from connector_support import definitions, registry
from signalhub.config import load_settings
from signalhub.connector import (
    CollectingPublisher,
    ConnectorRunner,
    CsvSource,
    JsonLinesSource,
    RejectList,
    SqlTableSource,
    WatermarkStore,
    open_source,
)
from signalhub.connector.sources import WATERMARK_FILE
from signalhub.errors import BrokerError, ConnectorError

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def test_csv_refs_are_physical_start_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('a;b\n1;"two\nlines"\n\n3;4\n5\n6;7\n', encoding="utf-8")
    items = list(CsvSource(path, delimiter=";").read())
    assert [(i.ref, i.raw) for i in items if i.raw] == [
        ("x.csv:2", {"a": "1", "b": "two\nlines"}),
        ("x.csv:5", {"a": "3", "b": "4"}),
        ("x.csv:7", {"a": "6", "b": "7"}),
    ]
    (bad,) = [i for i in items if i.raw is None]
    assert (bad.ref, bad.error, bad.text) == (
        "x.csv:6",
        "malformed CSV row: expected 2 columns, got 1",
        "5",
    )


def test_jsonl_rejects_lines_that_are_not_objects(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": \n\n[1, 2]\n{"a": 2}\n', encoding="utf-8")
    items = list(JsonLinesSource(path).read())
    assert [(i.ref, i.raw, i.error is None) for i in items] == [
        ("x.jsonl:1", {"a": 1}, True),
        ("x.jsonl:2", None, False),
        ("x.jsonl:4", None, False),
        ("x.jsonl:5", {"a": 2}, True),
    ]
    assert items[2].error == "expected a JSON object, got list"


def test_a_missing_file_is_a_connector_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="cannot read"):
        list(CsvSource(tmp_path / "nope.csv").read())


def test_open_source_picks_the_kind_from_the_location(tmp_path: Path) -> None:
    definition = definitions()["schuldhulpverlening"]
    state = tmp_path / "state.sqlite"
    assert isinstance(open_source(definition, "x.jsonl", state), JsonLinesSource)
    sql = open_source(definition, "sqlite:///x.db", state)
    assert isinstance(sql, SqlTableSource)
    assert sql.url == "sqlite:///x.db"
    plain_file = open_source(definition, "dir/x.sqlite", state)
    assert isinstance(plain_file, SqlTableSource)
    assert plain_file.url == "sqlite:///dir/x.sqlite"
    with pytest.raises(ConnectorError, match="has no csv source"):
        open_source(definition, "x.csv", state)
    with pytest.raises(ConnectorError, match="cannot tell what kind"):
        open_source(definition, "x.xlsx", state)


def test_open_source_keeps_watermarks_in_the_state_directory(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    source = open_source(definitions()["schuldhulpverlening"], "x.sqlite", settings)
    assert isinstance(source, SqlTableSource)
    source.commit(7)
    store = WatermarkStore(tmp_path / "state" / WATERMARK_FILE)
    assert store.get("schuldhulpverlening", "schuldsignalen") == 7


@dataclass
class Database:
    url: str
    table: str
    placeholder: str
    connect: Callable[[], Any]


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    path = tmp_path / "schuld.sqlite"
    return Database(f"sqlite:///{path}", "schuldsignalen", "?", lambda: sqlite3.connect(path))


@pytest.fixture
def postgres_db() -> Iterator[Database]:
    psycopg = pytest.importorskip("psycopg")
    try:
        probe = psycopg.connect(PG_URL, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (database test) is unreachable: {exc}")
    probe.close()
    table = f"schuldsignalen_{uuid.uuid4().hex[:10]}"
    yield Database(PG_URL, table, "%s", lambda: psycopg.connect(PG_URL))
    with contextlib.closing(psycopg.connect(PG_URL)) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.commit()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Database:
    db: Database = request.getfixturevalue(f"{request.param}_db")
    with contextlib.closing(db.connect()) as connection:
        load_sql_sample(connection, db.table, placeholder=db.placeholder)
    return db


def _source(db: Database, state: Path) -> SqlTableSource:
    return SqlTableSource(
        db.url,
        connector="schuldhulpverlening",
        table=db.table,
        watermark_column="mutatie_id",
        store=WatermarkStore(state),
        batch_size=7,  # several batches over the 30 sample rows
    )


def _runner(publisher: CollectingPublisher, commit_every: int = 500) -> ConnectorRunner:
    return ConnectorRunner(
        definitions()["schuldhulpverlening"],
        registry(),
        publisher,
        rejects=RejectList(),
        max_record_bytes=64 * 1024,
        commit_every=commit_every,
    )


def _ids(publisher: CollectingPublisher) -> list[bytes]:
    return [key for _, key, _ in publisher.sent]


def test_sql_polling_resumes_at_the_watermark_and_reads_no_row_twice(
    database: Database, tmp_path: Path
) -> None:
    state = tmp_path / "watermarks.sqlite"
    rows, planted = sql_rows()
    first = CollectingPublisher()
    report = _runner(first).run(_source(database, state))
    assert report.read == len(rows)
    assert report.rejected == len(planted)
    assert report.reject_codes == {"invalid": len(planted)}

    # a restart (new source, new runner, same state file) finds nothing new
    again = CollectingPublisher()
    assert _runner(again).run(_source(database, state)).read == 0

    # new rows arrive: only they are read
    new = [
        row | {"mutatie_id": 1000 + n, "signaalnummer": f"VS-NEW-{n}"}
        for n, row in enumerate(rows[:2])
    ]
    with contextlib.closing(database.connect()) as connection:
        names = list(new[0])
        insert = (
            f"INSERT INTO {database.table} ({', '.join(names)}) "
            f"VALUES ({', '.join([database.placeholder] * len(names))})"
        )
        for row in new:
            connection.execute(insert, tuple(row[n] for n in names))
        connection.commit()
    later = CollectingPublisher()
    report = _runner(later).run(_source(database, state))
    assert report.read == 2
    assert report.published == 2
    assert not set(_ids(later)) & set(_ids(first))
    assert WatermarkStore(state).get("schuldhulpverlening", database.table) == 1001


class _FlakyPublisher(CollectingPublisher):
    """Confirms the first ``good_flushes`` flushes, then Kafka is gone."""

    def __init__(self, good_flushes: int) -> None:
        super().__init__()
        self._good = good_flushes
        self.confirmed = 0  # how many of ``sent`` a good flush made durable

    def flush(self) -> None:
        if self.flushes >= self._good:
            raise BrokerError("Kafka did not confirm")
        super().flush()
        self.confirmed = len(self.sent)


def test_after_a_crash_the_next_run_continues_after_the_last_flush(
    database: Database, tmp_path: Path
) -> None:
    state = tmp_path / "watermarks.sqlite"
    rows, _ = sql_rows()
    flaky = _FlakyPublisher(good_flushes=1)
    with pytest.raises(BrokerError):
        _runner(flaky, commit_every=10).run(_source(database, state))
    committed = WatermarkStore(state).get("schuldhulpverlening", database.table)
    assert committed == rows[9]["mutatie_id"]  # the first ten were flushed and committed

    resumed = CollectingPublisher()
    report = _runner(resumed).run(_source(database, state))
    assert report.read == len(rows) - 10
    durable, unconfirmed = _ids(flaky)[: flaky.confirmed], _ids(flaky)[flaky.confirmed :]
    assert unconfirmed
    assert set(unconfirmed) <= set(_ids(resumed))  # sent again: at least once
    assert not set(durable) & set(_ids(resumed))  # what was durable is not read twice


def test_a_missing_sqlite_database_is_a_connector_error(tmp_path: Path) -> None:
    source = SqlTableSource(
        f"sqlite:///{tmp_path / 'nope.sqlite'}",
        connector="c",
        table="t",
        watermark_column="id",
        store=WatermarkStore(tmp_path / "state.sqlite"),
    )
    with pytest.raises(ConnectorError, match="does not exist"):
        list(source.read())


def test_only_sql_urls_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="postgresql:// or sqlite:///"):
        SqlTableSource(
            "mysql://x",
            connector="c",
            table="t",
            watermark_column="id",
            store=WatermarkStore(tmp_path / "s.sqlite"),
        )


@pytest.mark.parametrize(
    "value",
    [41, "2024-03-01", date(2024, 3, 1), datetime(2024, 3, 1, 10, 30)],
    ids=["int", "str", "date", "datetime"],
)
def test_watermark_store_keeps_the_type(tmp_path: Path, value: Any) -> None:
    store = WatermarkStore(tmp_path / "s.sqlite")
    assert store.get("c", "t") is None
    store.set("c", "t", value)
    assert store.get("c", "t") == value
    assert type(store.get("c", "t")) is type(value)


def test_a_csv_error_is_a_reject_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    huge = "x" * (5 * 1024 * 1024)  # over the csv field limit the source sets (4 MiB)
    path.write_text(f"a;b\n1;2\n3;{huge}\n5;6\n", encoding="utf-8")
    items = list(CsvSource(path, delimiter=";").read())
    assert [(i.ref, i.raw) for i in items] == [
        ("x.csv:2", {"a": "1", "b": "2"}),
        ("x.csv:3", None),
        ("x.csv:4", {"a": "5", "b": "6"}),
    ]
    assert (items[1].error or "").startswith("malformed CSV: field larger than field limit")
