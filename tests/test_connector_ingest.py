"""The ingest endpoint over httpx's ASGI transport: auth, body limits and per-record outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connector_support import POLITIE_RECORD as GOOD
from connector_support import definitions, make_runner
from signalhub.connector import create_ingest_app, tokens_from_env
from signalhub.errors import BrokerError

TOKEN = "s3cret-politie-token"
OTHER = "s3cret-gemeente-token"


class Hub:
    def __init__(
        self, max_body_bytes: int = 64 * 1024, refusal: Callable[[], str | None] | None = None
    ) -> None:
        politie, self.publisher, self.rejects = make_runner("politie")
        gemeente, _, _ = make_runner("gemeente")
        woningcorporatie, _, _ = make_runner("woningcorporatie")
        tokens = {"politie": SecretStr(TOKEN), "gemeente": SecretStr(OTHER)}
        self.app = create_ingest_app(
            {"politie": politie, "gemeente": gemeente, "woningcorporatie": woningcorporatie},
            tokens,
            max_body_bytes=max_body_bytes,
            refusal=refusal,
        )

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                return await client.post(path, **kwargs)

        return asyncio.run(go())


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_good_record_is_published_and_acknowledged() -> None:
    hub = Hub()
    response = hub.post("/ingest/politie", json=GOOD, headers=_auth(TOKEN))
    assert response.status_code == 200
    body = response.json()
    assert body["rejected"] == []
    ((published),) = body["published"]
    assert published["ref"] == "http[0]"
    assert published["topic"] == "signals.nuisance_report"
    assert [key.decode() for _, key, _ in hub.publisher.sent] == [published["signal_id"]]
    assert hub.publisher.flushes >= 1  # durable before the answer


def test_a_mixed_array_is_a_multi_status_with_reasons_but_no_records() -> None:
    hub = Hub()
    records = [GOOD, GOOD | {"incident_code": "X999"}, GOOD | {"ernst": "hoog"}]
    response = hub.post("/ingest/politie", json=records, headers=_auth(TOKEN))
    assert response.status_code == 207
    body = response.json()
    assert len(body["published"]) == 1
    assert [(r["ref"], r["code"]) for r in body["rejected"]] == [
        ("http[1]", "invalid"),
        ("http[2]", "invalid"),
    ]
    assert "X999" in body["rejected"][0]["reason"]
    assert "111222333" not in response.text  # the record is not echoed
    assert len(hub.rejects.rejects) == 2  # but kept in the runner's reject sink


def test_all_records_rejected_is_422() -> None:
    hub = Hub()
    response = hub.post(
        "/ingest/politie", json=[GOOD | {"incident_code": "X999"}], headers=_auth(TOKEN)
    )
    assert response.status_code == 422
    assert response.json()["error"] == "all_rejected"
    assert not hub.publisher.sent


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthenticated"),
        ({"Authorization": "Bearer "}, 401, "unauthenticated"),
        (_auth("wrong-token"), 403, "forbidden"),
        (_auth(OTHER), 403, "forbidden"),  # a valid token of another agency
    ],
    ids=["no-header", "basic", "empty-bearer", "wrong-token", "other-agency-token"],
)
def test_auth_failures(headers: dict[str, str], status: int, error: str) -> None:
    hub = Hub()
    response = hub.post("/ingest/politie", json=GOOD, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in response.text
    assert not hub.publisher.sent


def test_a_connector_without_a_configured_token_refuses_everything() -> None:
    response = Hub().post("/ingest/woningcorporatie", json={}, headers=_auth(TOKEN))
    assert response.status_code == 403
    assert response.json()["error"] == "ingest_disabled"


def test_unknown_connector_is_404() -> None:
    response = Hub().post("/ingest/nobody", json=GOOD, headers=_auth(TOKEN))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"incident_code": ', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "empty array"),
        (b'[{"a": 1}, 2]', "are not JSON objects"),
        (b'"text"', "are not JSON objects"),
    ],
    ids=["truncated", "not-utf8", "empty-array", "array-of-mixed", "string"],
)
def test_bad_bodies_are_422(content: bytes, message: str) -> None:
    hub = Hub()
    response = hub.post("/ingest/politie", content=content, headers=_auth(TOKEN))
    assert response.status_code == 422
    assert response.json()["error"] == "bad_body"
    assert message in response.json()["message"]


def test_a_body_over_the_limit_is_413_before_it_is_parsed() -> None:
    hub = Hub(max_body_bytes=1024)
    records = [GOOD | {"omschrijving": "x" * 600}] * 2
    response = hub.post("/ingest/politie", json=records, headers=_auth(TOKEN))
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert not hub.publisher.sent


def test_a_streamed_body_without_length_is_cut_off_at_the_limit() -> None:
    hub = Hub(max_body_bytes=1024)

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 200

    response = hub.post("/ingest/politie", content=chunks(), headers=_auth(TOKEN))
    assert response.status_code == 413


def test_only_post_is_allowed() -> None:
    hub = Hub()

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=hub.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            return await client.get("/ingest/politie", headers=_auth(TOKEN))

    assert asyncio.run(go()).status_code == 405


def test_tokens_come_from_the_variables_the_definitions_name() -> None:
    environ = {"SIGNALHUB_INGEST_TOKEN_POLITIE": " abc ", "SIGNALHUB_INGEST_TOKEN_GEMEENTE": ""}
    tokens = tokens_from_env(definitions(), environ)
    assert list(tokens) == ["politie"]
    assert tokens["politie"].get_secret_value() == "abc"


def test_while_the_hub_refuses_ingest_answers_503_with_the_reason_and_publishes_nothing() -> None:
    reason = "the broker is down and being restarted; retry in a few seconds"
    hub = Hub(refusal=lambda: reason)
    response = hub.post("/ingest/politie", json=GOOD, headers=_auth(TOKEN))
    assert response.status_code == 503
    assert response.json() == {"error": "not_accepting", "message": reason}
    assert response.headers["retry-after"] == "5"
    assert hub.publisher.sent == []
    wrong = hub.post("/ingest/politie", json=GOOD, headers=_auth("wrong"))
    assert wrong.status_code == 403  # the token is checked first: no reasons for strangers


def test_a_broker_that_does_not_acknowledge_gives_503_not_500() -> None:
    hub = Hub()

    def refuse() -> None:
        raise BrokerError("cannot send to signals.nuisance_report: KafkaTimeoutError")

    hub.publisher.flush = refuse  # type: ignore[method-assign]
    response = hub.post("/ingest/politie", json=GOOD, headers=_auth(TOKEN))
    assert response.status_code == 503
    assert response.json()["error"] == "broker_unavailable"
