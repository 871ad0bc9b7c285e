"""The runner: every planted bad record is rejected with its reason and the run goes on."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector_support import (
    FILE_SAMPLES,
    FIXED_NOW,
    definitions,
    make_runner,
    manifest,
    registry,
    sample_path,
)
from signalhub.connector import (
    CollectingPublisher,
    ConnectorRunner,
    CsvSource,
    JsonLinesSource,
    RejectFile,
    Source,
    SourceRecord,
)
from signalhub.errors import BrokerError
from signalhub.schema import codec


def _source(name: str, file_name: str) -> Source:
    path = sample_path(file_name)
    if file_name.endswith(".csv"):
        return CsvSource(path, delimiter=definitions()[name].source("csv").delimiter)
    return JsonLinesSource(path)


@pytest.mark.parametrize(("name", "file_name"), FILE_SAMPLES, ids=[n for n, _ in FILE_SAMPLES])
def test_planted_bad_records_are_rejected_and_the_rest_published(name: str, file_name: str) -> None:
    runner, publisher, rejects = make_runner(name)
    report = runner.run(_source(name, file_name))
    planted = manifest()[file_name]
    assert {r.ref: r.code for r in rejects.rejects} == planted
    assert all(r.reason and r.agency == name for r in rejects.rejects)
    assert report.rejected == len(planted)
    assert report.read == report.published + report.rejected
    assert report.published == len(publisher.sent) == len(set(report.signal_ids))
    # records after the first reject were still published: the run went on
    first_bad_line = min(int(ref.rsplit(":", 1)[1]) for ref in planted)
    assert report.published > first_bad_line
    reg = registry()
    for topic, key, value in publisher.sent:
        _, record = codec.decode(reg, value)
        assert key.decode() == record["envelope"]["signal_id"]
        assert topic == f"signals.{record['envelope']['signal_type']}"


def test_an_oversized_signal_is_rejected_by_the_configured_limit() -> None:
    runner, publisher, rejects = make_runner("politie", max_record_bytes=250)
    report = runner.run(_source("politie", "politie.csv"))
    oversized = [r for r in rejects.rejects if r.code == "oversized"]
    assert len(oversized) == report.reject_codes["oversized"] > 1
    assert all("more than the 250 allowed" in r.reason for r in oversized)
    assert publisher.sent
    assert all(len(value) <= 250 for _, _, value in publisher.sent)


def test_rejects_file_keeps_the_raw_record_for_the_agency_only(tmp_path: Path) -> None:
    path = tmp_path / "rejects" / "politie.jsonl"
    runner = ConnectorRunner(
        definitions()["politie"],
        registry(),
        CollectingPublisher(),
        rejects=RejectFile(path),
        max_record_bytes=64 * 1024,
    )
    runner.run(_source("politie", "politie.csv"))
    runner.run(_source("politie", "politie.csv"))  # appends, never truncates
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2 * len(manifest()["politie.csv"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    by_ref = {line["ref"]: line for line in lines}
    bad_bsn = by_ref["politie.csv:31"]
    assert bad_bsn["record"]["bsn_verdachte"] == "123456789"  # kept for the agency to fix
    assert set(bad_bsn) == {"agency", "source", "ref", "code", "reason", "record"}
    assert by_ref["politie.csv:7"]["record"]["text"].startswith("PL2300-2024999001;F350")


def test_rejects_are_never_logged_with_their_content(caplog: pytest.LogCaptureFixture) -> None:
    runner, _, _ = make_runner("politie")
    with caplog.at_level("DEBUG"):
        runner.run(_source("politie", "politie.csv"))
    assert "politie.csv:31" in caplog.text
    assert "123456789" not in caplog.text
    assert "Maastricht" not in caplog.text


class _ListSource:
    """A source over fixed records that remembers what was committed."""

    name = "list"

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._records = records
        self.committed: list[Any] = []

    def read(self) -> Iterator[SourceRecord]:
        for number, raw in enumerate(self._records, start=1):
            yield SourceRecord(f"list@{number}", raw, position=number)

    def commit(self, position: Any) -> None:
        self.committed.append(position)


def _debt(number: int) -> dict[str, Any]:
    return {
        "signaalnummer": f"VS-{number}",
        "signaalsoort": "HUUR",
        "signaaldatum": "2024-03-01 10:00:00",
        "schuldeiser": "Woningstichting Maasdal",
        "bedrag_achterstand": 100 + number,
        "maanden_achterstand": 2,
    }


def test_positions_are_committed_only_after_a_flush() -> None:
    publisher = CollectingPublisher()
    runner = ConnectorRunner(
        definitions()["schuldhulpverlening"],
        registry(),
        publisher,
        rejects=RejectFileless(),
        max_record_bytes=64 * 1024,
        clock=lambda: FIXED_NOW,
        commit_every=2,
    )
    source = _ListSource([_debt(n) for n in range(5)])
    report = runner.run(source)
    assert report.published == 5
    assert source.committed == [2, 4, 5]
    assert publisher.flushes == 3


class _FailingPublisher(CollectingPublisher):
    def flush(self) -> None:
        raise BrokerError("Kafka did not confirm")


def test_a_broker_failure_stops_the_run_without_committing() -> None:
    runner = ConnectorRunner(
        definitions()["schuldhulpverlening"],
        registry(),
        _FailingPublisher(),
        rejects=RejectFileless(),
        max_record_bytes=64 * 1024,
    )
    source = _ListSource([_debt(n) for n in range(3)])
    with pytest.raises(BrokerError):
        runner.run(source)
    assert source.committed == []


class RejectFileless:
    """A reject sink that must not be used (the records above are all good)."""

    def write(self, reject: Any) -> None:
        raise AssertionError(f"unexpected reject {reject.ref}: {reject.reason}")
