"""Queries, subject lookup and the LDV exports, on real SQLite and PostgreSQL; and the CLI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit_store_support import BACKENDS, T0, StoreHandle, decision, store_handle
from signalhub.audit.queries import (
    LDV_COLUMNS,
    AuditQuery,
    find,
    is_bsn,
    search_refs,
    subject_disclosures,
    to_ldv,
    write_csv,
    write_jsonl,
)
from signalhub.audit.record import AUDIT_DOMAIN
from signalhub.pseudonym.pseudonyms import Pseudonymiser

pytestmark = pytest.mark.integration

KEY = bytes(range(32))
ALICE, BOB = "111222333", "123456782"


def ref(bsn: str) -> str:
    return Pseudonymiser(KEY, 1).pseudonym(AUDIT_DOMAIN, "bsn", bsn)


@pytest.fixture(params=BACKENDS)
def handle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHandle]:
    with store_handle(request.param, tmp_path) as opened:
        opened.store.append(
            [
                decision(1, subject_refs=(ref(ALICE),)),
                decision(2, subject_refs=(ref(ALICE),), outcome="deny", subscriber="om"),
                decision(3, subject_refs=(ref(BOB),), subscriber="politie"),
                decision(4, subject_refs=(ref(ALICE), ref(BOB)), signal_type="drug_signal"),
                decision(5, outcome="error", subscriber="om"),
            ]
        )
        yield opened


def signals(rows: list[object]) -> list[int]:
    return [int(row.record["signal_id"].replace("-", ""), 16) for row in rows]  # type: ignore[attr-defined]


def test_filters_combine(handle: StoreHandle) -> None:
    store = handle.store
    assert signals(find(store, AuditQuery())) == [1, 2, 3, 4, 5]
    assert signals(find(store, AuditQuery(subscriber="om"))) == [2, 5]
    assert signals(find(store, AuditQuery(signal_type="drug_signal"))) == [4]
    assert signals(find(store, AuditQuery(outcome="allow"))) == [1, 3, 4]
    window = AuditQuery(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
    assert signals(find(store, window)) == [2, 3]  # since inclusive, until exclusive
    assert signals(find(store, AuditQuery(subscriber="om", outcome="error"))) == [5]


def test_subject_lists_disclosures_about_that_person_only(handle: StoreHandle) -> None:
    alice = search_refs(ALICE, [Pseudonymiser(KEY, 1)])
    assert signals(subject_disclosures(handle.store, alice)) == [1, 4]
    assert signals(subject_disclosures(handle.store, alice, include_refusals=True)) == [1, 2, 4]
    assert signals(
        subject_disclosures(handle.store, search_refs(BOB, [Pseudonymiser(KEY, 1)]))
    ) == [3, 4]
    # The same BSN written differently is the same person; another key finds nothing.
    assert search_refs("111 222 333", [Pseudonymiser(KEY, 1)]) == alice
    assert subject_disclosures(handle.store, search_refs(ALICE, [Pseudonymiser(KEY, 2)])) == []


def test_exports_use_ldv_field_names(handle: StoreHandle) -> None:
    rows = find(handle.store, AuditQuery(signal_type="drug_signal"))
    lines = [to_ldv(row, [ref(BOB)]) for row in rows]
    out = io.StringIO()
    assert write_jsonl(lines, out) == 1
    line = json.loads(out.getvalue())
    assert line["trace_id"] == rows[0].record["signal_id"].replace("-", "")
    assert len(line["span_id"]) == 16
    assert line["name"] == "signalhub.disclose"
    assert line["status_code"] == "STATUS_CODE_OK"
    assert line["start_time"] == "2024-03-01T09:04:00.000Z"
    attributes = line["attributes"]
    assert (
        attributes["dpl.core.processing_activity_id"] == "urn:signalhub:subscription:gemeente-sub"
    )
    assert attributes["dpl.core.data_subject_id"] == ref(BOB)  # only the person asked about
    assert attributes["dpl.core.data_subject_id_type"] == "BSN"
    assert attributes["dpl.signalhub.fields_clear"] == ["category", "severity"]
    out = io.StringIO()
    write_csv(lines, out)
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(parsed[0]) == LDV_COLUMNS
    assert parsed[0]["dpl.signalhub.subscriber"] == "gemeente"
    assert json.loads(parsed[0]["dpl.signalhub.fields_pseudonymised"]) == ["subject_bsn"]
    error = to_ldv(find(handle.store, AuditQuery(outcome="error"))[0])
    assert (error["name"], error["status_code"]) == ("signalhub.withhold", "STATUS_CODE_ERROR")


def test_bsn_shape() -> None:
    assert is_bsn("111222333")
    assert is_bsn("1112.22.333")
    assert is_bsn("11222333")  # a lost leading zero is restored by normalisation
    assert not is_bsn("1234")
    assert not is_bsn("abcdefghi")


def _invoke(handle: StoreHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str):  # type: ignore[no-untyped-def]
    from signalhub.cli import cli

    dsn = f"sqlite:///{handle.dsn}" if handle.backend == "sqlite" else handle.dsn
    monkeypatch.setenv("SIGNALHUB_AUDIT_DSN", dsn)
    monkeypatch.setenv("SIGNALHUB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SIGNALHUB_MASTER_KEY", KEY.hex())
    return CliRunner().invoke(cli, list(args))


def test_cli_verify_query_and_subject(
    handle: StoreHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _invoke(handle, tmp_path, monkeypatch, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert "5 rows" in result.output
    assert "chain intact" in result.output
    result = _invoke(
        handle, tmp_path, monkeypatch, "audit", "query", "--subscriber", "om", "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(io.StringIO(result.output)))) == 2
    result = _invoke(handle, tmp_path, monkeypatch, "audit", "subject", ALICE)
    assert result.exit_code == 0, result.output
    assert "2 records" in result.output
    assert ALICE not in result.output
    result = _invoke(handle, tmp_path, monkeypatch, "audit", "subject", "12")
    assert result.exit_code != 0
    handle.sql("UPDATE audit_log SET body = replace(body, 'politie', 'om') WHERE seq = 3")
    result = _invoke(handle, tmp_path, monkeypatch, "audit", "verify")
    assert result.exit_code == 1
    assert "seq 3: changed" in result.output
