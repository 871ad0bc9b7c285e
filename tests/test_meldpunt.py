"""The residents' meldpunt: the public form, the anonymous connector, the rate limits.

A report names places and patterns, never a person: what reaches the publisher (and, in one
test, the real broker) and the logs is inspected for the reporter's address, headers and any
person identifier typed into the form.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from connector_support import definitions, make_runner, registry, sample_path
from hub_support import valid_bsn
from signalhub.bundling import Bundler, BundleStore, BundlingPolicy, cells, to_csv
from signalhub.config import project_root
from signalhub.connector import (
    CollectingPublisher,
    ConnectorRunner,
    JsonLinesSource,
    KafkaPublisher,
    Publisher,
    RejectList,
    ingest_routes,
)
from signalhub.connector.meldpunt import meldpunt_routes
from signalhub.connector.ratelimit import RateLimiter
from signalhub.connector.screening import find_contacts, scrub_report_text
from signalhub.enforcer.generalise import WITHHELD_MARK, find_bsns
from signalhub.enforcer.outputs import SourceRecord
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec

KEY = bytes(range(32))
TOKEN = "meldpunt-token-never-in-a-page"
ADDRESS = "203.0.113.77"
AGENT = "Mozilla/5.0 (reporter-browser-marker)"
GOOD = {
    "soort": "drugshandel",
    "straat": "Severenstraat",
    "postcodegebied": "6221 AB",
    "buurtcode": "BU09350201",
    "tijdstip": "avond",
    "hoe_vaak": "dagelijks",
    "waargenomen_op": "2024-03-12",
    "omschrijving": "Elke avond handel bij het speeltuintje.",
}


class Meldpunt:
    """The HTTP role's wiring of ingest and form, over a publisher of the test's choice."""

    def __init__(
        self,
        publisher: Publisher | None = None,
        *,
        per_hour: int = 10,
        token: str | None = TOKEN,
        per_minute: int | None = None,
    ) -> None:
        definition = definitions()["bewoners"]
        if per_minute is not None:
            definition = definition.model_copy(update={"requests_per_minute": per_minute})
        self.publisher = publisher or CollectingPublisher()
        self.rejects = RejectList()
        runner = ConnectorRunner(
            definition, registry(), self.publisher, rejects=self.rejects, max_record_bytes=65536
        )
        tokens = {"bewoners": SecretStr(TOKEN)}
        ingest = ingest_routes({"bewoners": runner}, tokens)
        secret = SecretStr(token) if token is not None else None
        form = meldpunt_routes(Starlette(routes=ingest), secret, reports_per_hour=per_hour)
        self.app = Starlette(routes=[*ingest, *form])

    def request(
        self, method: str, path: str, *, address: str = ADDRESS, **kwargs: Any
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(address, 50123))
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(go())

    def report(self, fields: dict[str, str], **kwargs: Any) -> httpx.Response:
        """Load the form, then post ``fields`` with its form token, as a browser does."""
        page = self.request("GET", "/meldpunt", **kwargs)
        proof = re.search(r'name="formulier" value="([^"]+)"', page.text)
        assert proof is not None, page.text
        headers = {"User-Agent": AGENT, "X-Forwarded-For": "198.51.100.9", "Origin": "http://hub"}
        body = {"formulier": proof.group(1), **fields}
        return self.request("POST", "/meldpunt", data=body, headers=headers, **kwargs)

    def payloads(self) -> list[dict[str, Any]]:
        assert isinstance(self.publisher, CollectingPublisher)
        return [codec.decode(registry(), value)[1] for _, _, value in self.publisher.sent]


# -- the form ----------------------------------------------------------------------------------


def test_the_form_asks_nothing_about_the_reporter_and_keeps_the_token_server_side() -> None:
    page = Meldpunt().request("GET", "/meldpunt")
    assert page.status_code == 200
    assert "set-cookie" not in page.headers
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    names = set(re.findall(r"<(?:input|select|textarea)[^>]* name=\"([a-z_]+)\"", page.text))
    assert names == {"formulier", "soort", "straat", "postcodegebied", "waargenomen_op",
                     "tijdstip", "hoe_vaak", "omschrijving"}  # fmt: skip
    assert TOKEN not in page.text


def test_a_report_is_published_with_nothing_of_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Meldpunt()
    with caplog.at_level(logging.DEBUG):
        answer = hub.report(GOOD)
    assert answer.status_code == 200, answer.text
    assert "Dank u" in answer.text
    assert TOKEN not in answer.text
    ((topic, _key, value),) = hub.publisher.sent  # type: ignore[attr-defined]
    assert topic == "signals.neighbourhood_report"
    for leaked in (ADDRESS, "198.51.100.9", "reporter-browser-marker", "Mozilla"):
        assert leaked.encode() not in value
        assert leaked not in caplog.text
    (record,) = hub.payloads()
    assert record["payload"] == {
        "category": "drug_dealing_spot",
        "street": "Severenstraat",
        "postcode_area": "6221",
        "neighbourhood_code": "BU09350201",
        "time_of_day": "evening",
        "frequency": "daily",
        "description": "Elke avond handel bij het speeltuintje.",
    }
    envelope = record["envelope"]
    assert envelope["source_agency"] == "bewoners"
    assert re.fullmatch(r"M-[A-Z]{10}", envelope["source_ref"])  # random, no digits
    assert envelope["source_ref"] in answer.text  # the resident's reference


@pytest.mark.parametrize(
    "extra",
    [{"naam": "Jan de Vries"}, {"email": "jan@example.nl"}, {"ip": ADDRESS}],
    ids=["name", "email", "ip"],
)
def test_the_form_refuses_a_field_about_a_person(extra: dict[str, str]) -> None:
    hub = Meldpunt()
    answer = hub.report(GOOD | extra)
    assert answer.status_code == 422
    assert hub.publisher.sent == []  # type: ignore[attr-defined]
    assert next(iter(extra.values())) not in answer.text


def test_a_bsn_or_phone_typed_into_the_form_never_leaves_the_hub() -> None:
    hub = Meldpunt()
    bsn = valid_bsn()
    text = f"Dealer met BSN {bsn[:4]}.{bsn[4:]} belt 06-12345678, mail dealer@example.nl."
    assert hub.report(GOOD | {"omschrijving": text}).status_code == 200
    (record,) = hub.payloads()
    description = record["payload"]["description"]
    assert description.count(WITHHELD_MARK) == 3
    assert find_bsns(description) == []
    assert "12345678" not in description
    assert "@" not in description
    refused = hub.report(GOOD | {"straat": f"bij BSN {bsn}"})
    assert refused.status_code == 422
    assert "BSN" in refused.text
    assert bsn not in refused.text
    assert len(hub.publisher.sent) == 1  # type: ignore[attr-defined]
    assert [r.record for r in hub.rejects.rejects] == [{}]  # the refused report is not kept


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
    ids=["other-origin", "opaque-origin", "fetch-metadata"],
)
def test_a_cross_site_post_is_refused(headers: dict[str, str]) -> None:
    hub = Meldpunt()
    page = hub.request("GET", "/meldpunt")
    proof = re.search(r'name="formulier" value="([^"]+)"', page.text)
    assert proof is not None
    answer = hub.request(
        "POST", "/meldpunt", data={"formulier": proof.group(1), **GOOD}, headers=headers
    )
    assert answer.status_code == 403
    assert hub.publisher.sent == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("proof", ["", "1700000000.deadbeef", "not-a-token"])
def test_a_post_without_a_valid_form_token_is_refused(proof: str) -> None:
    hub = Meldpunt()
    answer = hub.request("POST", "/meldpunt", data={"formulier": proof, **GOOD})
    assert answer.status_code == 400
    assert hub.publisher.sent == []  # type: ignore[attr-defined]


def test_without_a_token_the_meldpunt_is_closed() -> None:
    hub = Meldpunt(token=None)
    assert hub.request("GET", "/meldpunt").status_code == 503
    assert hub.request("POST", "/meldpunt", data=GOOD).status_code == 503


# -- rate limits -------------------------------------------------------------------------------


def test_the_form_limits_each_address_and_not_the_others() -> None:
    hub = Meldpunt(per_hour=3)
    statuses = [hub.report(GOOD).status_code for _ in range(3)]
    limited = hub.report(GOOD)
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600
    assert hub.report(GOOD, address="198.51.100.20").status_code == 200
    assert len(hub.publisher.sent) == 4  # type: ignore[attr-defined]


def test_ingest_limits_the_meldpunt_token_per_minute() -> None:
    hub = Meldpunt(per_minute=2)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    record = GOOD | {"meldingnummer": "M-TEST"}
    statuses = [hub.request("POST", "/ingest/bewoners", json=record, headers=auth).status_code
                for _ in range(3)]  # fmt: skip
    assert statuses == [200, 200, 429]
    limited = hub.request("POST", "/ingest/bewoners", json=record, headers=auth)
    assert limited.json()["error"] == "rate_limited"
    assert "Retry-After" in limited.headers


def test_the_limiter_keeps_no_address_and_forgets_after_the_window() -> None:
    now = [1000.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    assert [limiter.acquire(ADDRESS) for _ in range(3)][:2] == [None, None]
    assert limiter.acquire(ADDRESS) == 60.0
    held = repr(limiter.state()) + repr(vars(limiter))
    assert ADDRESS not in held
    assert ADDRESS.encode().hex() not in held
    assert all(len(key) == 16 for key in limiter.state())  # a keyed hash, not the address
    now[0] += 61
    assert limiter.acquire(ADDRESS) is None
    other = RateLimiter(2, 60.0, clock=lambda: now[0])
    assert set(other.state()) == set()  # a new process starts empty: nothing was persisted


# -- screening, the connector and the wijkbeeld ------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "06-12345678",
        "+31 6 1234 5678",
        "0031612345678",
        "(043) 350 12 34",
        "x.y+z@mail.example.org",
    ],
)
def test_phone_numbers_and_email_addresses_are_found_and_scrubbed(written: str) -> None:
    text = f"Bel {written} maar."
    assert find_contacts(text) != []
    assert scrub_report_text(text) == f"Bel {WITHHELD_MARK} maar."


@pytest.mark.parametrize("innocent", ["2024-03-12", "BU09350201", "M-0004", "6221 AB", "nr 12"])
def test_places_and_dates_are_not_taken_for_a_person(innocent: str) -> None:
    assert find_contacts(innocent) == []


def test_the_sample_reports_are_screened_as_the_manifest_says() -> None:
    runner, publisher, rejects = make_runner("bewoners")
    report = runner.run(JsonLinesSource(sample_path("bewoners.jsonl")))
    assert report.reject_codes["person_data"] == 3
    assert all(reject.record == {} for reject in rejects.rejects)
    text = "".join(
        str(codec.decode(registry(), value)[1]["payload"]) for _, _, value in publisher.sent
    )
    assert find_bsns(text) == []
    assert find_contacts(text) == []
    assert text.count(WITHHELD_MARK) == 3


def test_the_wijkbeeld_counts_reports_with_the_same_suppression(tmp_path: Path) -> None:
    """The samples' hotspot (8 reports, one neighbourhood, one week) shows; every other cell of
    residents' reports is one or two reports and shows as ``<5``."""
    runner, publisher, _ = make_runner("bewoners")
    runner.run(JsonLinesSource(sample_path("bewoners.jsonl")))
    records = [SourceRecord(t, 0, n, k, v) for n, (t, k, v) in enumerate(publisher.sent)]
    engine = EmbeddedPolicyEngine.from_dir(project_root() / "policies")
    try:
        with BundleStore(tmp_path / "bundling.sqlite") as store:
            bundler = Bundler(registry(), store, BundlingPolicy(engine), Pseudonymiser(KEY))
            bundler.process(records)
            found = [c for c in cells(store) if c.signal_type == "neighbourhood_report"]
    finally:
        engine.close()
    assert sum(cell.count for cell in found) == len(publisher.sent) == 30
    shown = to_csv(found, 5)
    assert "BU09350201,neighbourhood_report,2024-W11,8" in shown
    assert {cell.count for cell in found if cell.count < 5} <= {1, 2, 3, 4}
    small = [line for line in shown.splitlines()[1:] if not line.endswith(",8")]
    assert small
    assert all(line.endswith(",<5") for line in small)


@pytest.mark.integration
def test_what_reaches_kafka_holds_nothing_of_the_reporter(broker: Any) -> None:
    """Through the real broker: the record on the topic, read back, is the report and only it."""
    from signalhub.broker.reader import assign_topics, drain, open_consumer

    topic = registry().signal("neighbourhood_report").topic
    broker.create_topics([topic], partitions=1)
    publisher = KafkaPublisher(broker.bootstrap_servers)
    try:
        hub = Meldpunt(publisher)
        bsn = valid_bsn()
        answer = hub.report(GOOD | {"omschrijving": f"Dealer, BSN {bsn}, tel 0612345678."})
    finally:
        publisher.close()
    assert answer.status_code == 200
    reference = re.search(r"M-[A-Z]{10}", answer.text)
    assert reference is not None
    consumer = open_consumer(broker.bootstrap_servers)
    try:
        assign_topics(consumer, [topic])
        values = [message.value for message in drain(consumer, idle_ms=2000)]
    finally:
        consumer.close()
    ours = [v for v in values if reference.group(0).encode() in v]
    assert len(ours) == 1
    for leaked in (ADDRESS, "198.51.100.9", "reporter-browser-marker", bsn, "0612345678"):
        assert leaked.encode() not in ours[0]
    record = codec.decode(registry(), ours[0])[1]
    assert set(record["payload"]) == {"category", "street", "postcode_area", "neighbourhood_code",
                                      "time_of_day", "frequency", "description"}  # fmt: skip
    assert find_bsns(str(record)) == []


@pytest.mark.integration
def test_the_http_role_serves_the_meldpunt_publicly_and_the_console_still_asks_a_login(
    broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import ExitStack

    from signalhub.apps.serve import build_http_app
    from signalhub.config import load_settings

    monkeypatch.setenv("SIGNALHUB_INGEST_TOKEN_BEWONERS", TOKEN)
    settings = load_settings(state_dir=tmp_path / "state")
    broker.create_topics([registry().signal("neighbourhood_report").topic], partitions=1)

    async def get(app: Any, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(ADDRESS, 50123))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            return await client.get(path)

    with ExitStack() as stack:
        app = build_http_app(settings, broker.bootstrap_servers, stack)
        form = asyncio.run(get(app, "/meldpunt"))
        console = asyncio.run(get(app, "/console/"))
    assert form.status_code == 200
    assert 'action="/meldpunt"' in form.text
    assert TOKEN not in form.text
    assert console.status_code in (302, 303, 307)  # to the login page: no session
    assert "/console/login" in console.headers["location"]
