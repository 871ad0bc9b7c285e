"""One bad record costs that record, never the run or the batch: each kind of bad input, alone.

Every test here failed before the fix it pins: a stray byte stopped the whole file, year 0001
stopped a CSV run and answered 500 for a whole HTTP batch, a nested object reached subscribers as
text, deep JSON gave an unhandled 500, and a field the record left out lost its schema default.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connector_support import FIXED_NOW, definitions, make_runner, registry, sample_path
from connector_support import POLITIE_RECORD as POLITIE
from signalhub.config import load_settings
from signalhub.connector import (
    CsvSource,
    JsonLinesSource,
    Mapper,
    Published,
    Reject,
    create_ingest_app,
)
from signalhub.connector.mapping import ObservedWindow
from signalhub.errors import ValidationError

TOKEN = "s3cret-politie-token"


def _gemeente_case(zaaktype: str = "OVERLAST") -> dict[str, Any]:
    """The first sample case of ``zaaktype``, as the zaaksysteem exports it."""
    for line in sample_path("gemeente.jsonl").read_text("utf-8").splitlines():
        try:
            case = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(case, dict) and case.get("zaaktype") == zaaktype:
            return dict(case)
    raise AssertionError(f"no {zaaktype} case in the sample")


def _mapper(name: str, window: ObservedWindow | None = None) -> Mapper:
    return Mapper(definitions()[name], registry(), clock=lambda: FIXED_NOW, window=window)


def _post(app: Any, body: bytes) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            return await client.post("/ingest/politie", content=body, headers=headers)

    return asyncio.run(go())


# -- bytes that are not text ----------------------------------------------------------------------


def test_a_non_utf8_byte_in_a_jsonl_file_rejects_its_line_only(tmp_path: Path) -> None:
    good = json.dumps(_gemeente_case(), ensure_ascii=False).encode()
    bad = good.replace(b'"zaaktype"', b'"opmerking": "caf\xe9", "zaaktype"')
    path = tmp_path / "gemeente.jsonl"
    path.write_bytes(b"\n".join([good, bad, good.replace(b"Z-2024", b"Z-2025")]) + b"\n")
    runner, publisher, rejects = make_runner("gemeente")

    report = runner.run(JsonLinesSource(path))

    assert (report.read, report.published, report.rejected) == (3, 2, 1)
    assert len(publisher.sent) == 2
    (reject,) = rejects.rejects
    assert reject.ref == "gemeente.jsonl:2"
    assert reject.code == "undecodable"
    assert reject.reason.startswith("line 2: not valid utf-8 text (byte 0xe9 at character")
    assert "caf\\xe9" in reject.record["text"]  # the agency sees the byte it has to fix


def test_a_non_utf8_byte_in_a_csv_file_rejects_its_row_and_names_the_column(
    tmp_path: Path,
) -> None:
    text = sample_path("politie.csv").read_bytes().splitlines()
    header, first, second = text[0], text[1], text[2]
    cells = second.split(b";")
    cells[9] += b" caf\xe9"  # omschrijving, in Latin-1 as a misconfigured export writes it
    bad = b";".join(cells)
    path = tmp_path / "politie.csv"
    path.write_bytes(b"\n".join([header, first, bad, first.replace(b"PL2300", b"PL2301")]) + b"\n")
    runner, _, rejects = make_runner("politie")

    report = runner.run(CsvSource(path, delimiter=";"))

    assert (report.read, report.published, report.rejected) == (3, 2, 1)
    (reject,) = rejects.rejects
    assert reject.ref == "politie.csv:3"
    assert reject.reason.startswith(
        "line 3: not valid utf-8 text (column 'omschrijving', byte 0xe9"
    )


def test_an_escaped_half_surrogate_pair_is_a_reject_not_a_crash(tmp_path: Path) -> None:
    good = json.dumps(_gemeente_case())
    bad = good.replace('"zaaktype"', '"opmerking": "\\udc00", "zaaktype"')
    path = tmp_path / "gemeente.jsonl"
    path.write_text(f"{bad}\n{good}\n", encoding="utf-8")
    runner, _, rejects = make_runner("gemeente")

    report = runner.run(JsonLinesSource(path))

    assert (report.published, report.rejected) == (1, 1)
    assert "surrogate" in rejects.rejects[0].reason


# -- implausible dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pleegdatum", "problem"),
    [
        ("01-01-0001 00:00", "lies before 1900-01-01"),
        ("31-12-1899 12:00", "lies before 1900-01-01"),
        ("01-01-2099 00:00", "lies more than 86400 s in the future"),
        ("9999-12-31T23:59:00-05:00", "lies more than 86400 s in the future"),
    ],
    ids=["year-0001", "1899", "year-2099", "year-9999-west-of-utc"],
)
def test_an_implausible_observation_date_is_a_reject_with_its_reason(
    pleegdatum: str, problem: str
) -> None:
    runner, publisher, _ = make_runner("politie")

    (outcome,) = runner.handle_records([POLITIE | {"pleegdatum": pleegdatum}], "http")

    assert isinstance(outcome, Reject)
    assert outcome.code == "invalid"
    assert f"column 'pleegdatum': the observation date {problem}" in outcome.reason
    assert publisher.sent == []


def test_the_observation_window_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALHUB_OBSERVED_NOT_BEFORE", "2024-03-15")
    monkeypatch.setenv("SIGNALHUB_OBSERVED_MAX_FUTURE_S", "0")
    window = ObservedWindow.from_settings(load_settings())
    assert window == ObservedWindow(date(2024, 3, 15), 0)
    mapper = _mapper("politie", window)

    with pytest.raises(ValidationError, match="lies before 2024-03-15"):
        mapper.map(POLITIE, "test:1")  # 14 March, accepted by the default window
    # Amsterdam time two hours after FIXED_NOW (local time is UTC+2 in July)
    soon = (FIXED_NOW + timedelta(hours=4)).strftime("%d-%m-%Y %H:%M")
    with pytest.raises(ValidationError, match="lies more than 0 s in the future"):
        mapper.map(POLITIE | {"pleegdatum": soon}, "test:2")
    _, record = _mapper("politie").map(POLITIE | {"pleegdatum": soon}, "test:3")
    assert record["envelope"]["observed_at"] > FIXED_NOW  # within the default day of skew


def test_http_ingest_answers_one_reject_for_year_0001_not_500_for_the_batch() -> None:
    runner, publisher, _ = make_runner("politie")
    app = create_ingest_app({"politie": runner}, {"politie": SecretStr(TOKEN)})
    batch = [POLITIE, POLITIE | {"bvh_nummer": "PL2300-2", "pleegdatum": "01-01-0001 00:00"}]

    response = _post(app, json.dumps(batch).encode())

    assert response.status_code == 207, response.text
    assert [r["ref"] for r in response.json()["rejected"]] == ["http[1]"]
    assert "lies before 1900-01-01" in response.json()["rejected"][0]["reason"]
    assert len(publisher.sent) == 1


# -- structure where one value belongs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("zaaktype", "change", "message"),
    [
        ("OVERLAST", {"locatie": {"adres": {"nested": True}}}, "'locatie.adres': expected text"),
        ("OVERLAST", {"locatie": {"adres": ["Markt 1"]}}, "'locatie.adres': expected text, got"),
        ("OVERLAST", {"ernst": {"niveau": 3}}, "'ernst': expected a whole number, got an object"),
        ("OVERLAST", {"ernst": [3]}, "'ernst': expected a whole number, got an array"),
        ("OVERLAST", {"categorie": {"x": "geluid"}}, "'categorie': expected text, got an object"),
        ("RADICALISERING", {"indicatoren": [{"code": "IND-1"}]}, "a list of plain values"),
        ("RADICALISERING", {"indicatoren": {"code": "IND-1"}}, "expected a list, got an object"),
    ],
    ids=["str-object", "str-array", "int-object", "int-array", "value-list", "list-item", "list"],
)
def test_an_object_or_array_where_one_value_belongs_is_refused(
    zaaktype: str, change: dict[str, Any], message: str
) -> None:
    case = _gemeente_case(zaaktype)
    for key, value in change.items():
        case[key] = {**case[key], **value} if key == "locatie" else value
    with pytest.raises(ValidationError, match=r"got an (object|array)") as caught:
        _mapper("gemeente").map(case, "test:1")
    assert message in str(caught.value)
    assert "nested" not in str(caught.value)  # the value itself is never quoted
    assert "Markt" not in str(caught.value)


def test_a_boolean_field_given_an_object_is_refused() -> None:
    record = POLITIE | {"incident_code": "I200", "ondermijning": {"ja": True}}
    with pytest.raises(ValidationError, match="'ondermijning': expected ja/nee, got an object"):
        _mapper("politie").map(record, "test:1")


# -- deep JSON ------------------------------------------------------------------------------------


def test_deeply_nested_json_is_422_publishes_nothing_and_the_endpoint_stays_healthy() -> None:
    runner, publisher, _ = make_runner("politie")
    app = create_ingest_app({"politie": runner}, {"politie": SecretStr(TOKEN)})
    deep = b'[{"x": ' * 5000 + b"1" + b"}]" * 5000
    good = json.dumps([POLITIE]).encode()

    refused = _post(app, b"[" + good[1:-1] + b", " + deep + b"]")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "bad_body"
    assert "more than 32 levels deep" in refused.json()["message"]
    assert publisher.sent == []

    assert _post(app, good).status_code == 200
    assert len(publisher.sent) == 1


def test_json_within_the_depth_limit_is_accepted() -> None:
    runner, publisher, _ = make_runner("politie")
    app = create_ingest_app({"politie": runner}, {"politie": SecretStr(TOKEN)})
    extra = '{"x": ' * 30 + "1" + "}" * 30  # 32 levels with the array and the record
    body = json.dumps([POLITIE])[:-2] + f', "bijlage": {extra}' + "}]"

    assert _post(app, body.encode()).status_code == 200
    assert len(publisher.sent) == 1


def test_a_deeply_nested_jsonl_line_is_a_reject_and_the_file_goes_on(tmp_path: Path) -> None:
    good = json.dumps(_gemeente_case())
    path = tmp_path / "gemeente.jsonl"
    path.write_text(f"{'[' * 100_000}\n{good}\n", encoding="utf-8")
    runner, _, rejects = make_runner("gemeente")

    report = runner.run(JsonLinesSource(path))

    assert (report.published, report.rejected) == (1, 1)
    assert "nested more than 32 levels deep" in rejects.rejects[0].reason


# -- schema defaults ------------------------------------------------------------------------------


@pytest.mark.parametrize("absent", [{}, {"indicatoren": None}], ids=["missing", "null"])
def test_a_field_the_record_leaves_out_takes_its_schema_default(absent: dict[str, Any]) -> None:
    case = {k: v for k, v in _gemeente_case("RADICALISERING").items() if k != "indicatoren"}
    runner, _, rejects = make_runner("gemeente")

    (outcome,) = runner.handle_records([case | absent], "http")

    assert isinstance(outcome, Published), rejects.rejects
    _, record = _mapper("gemeente").map(case | absent, "test:1")
    assert record["payload"]["indicators"] == []


def test_a_required_field_left_out_is_still_a_reject() -> None:
    case = {k: v for k, v in _gemeente_case("RADICALISERING").items() if k != "zorgniveau"}
    runner, _, _ = make_runner("gemeente")

    (outcome,) = runner.handle_records([case], "http")

    assert isinstance(outcome, Reject)
    assert "concern_level" in outcome.reason


def test_an_escaped_half_surrogate_pair_in_an_ingest_body_is_422_not_500() -> None:
    runner, publisher, _ = make_runner("politie")
    app = create_ingest_app({"politie": runner}, {"politie": SecretStr(TOKEN)})
    body = json.dumps([POLITIE, POLITIE | {"omschrijving": "x"}]).replace('"x"', '"\\udc00"')

    response = _post(app, body.encode())

    assert response.status_code == 422, response.text
    assert "element(s) [1] escape half a surrogate pair" in response.json()["message"]
    assert publisher.sent == []
