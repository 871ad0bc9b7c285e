"""The console against a running hub over HTTP: metrics vs the audit, health, DLQ, access rules."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console_support import WRONG_TOPIC_BSN, WRONG_TOPIC_NAME, ConsoleHub, console_hub, login
from signalhub.audit.backends import open_store
from signalhub.audit.queries import AuditQuery, find
from signalhub.console.views_audit import catch_up

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleHub]:
    with (
        pytest.MonkeyPatch.context() as patch,
        console_hub(tmp_path_factory.mktemp("console-hub"), patch) as running,
    ):
        yield running


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _sum(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (sample, items), value in samples.items()
        if sample == name and set(labels.items()) <= set(items)
    )


def test_metrics_parse_and_their_counters_match_the_audit_store(hub: ConsoleHub) -> None:
    with hub.client() as client:
        text = client.get("/metrics").text
    samples = _samples(text)
    # The console's merge of the enforcer's exporter: decisions, signals, deliveries, lag.
    assert _sum(samples, "signalhub_enforcer_up") == 1
    assert _sum(samples, "signalhub_signals_total") > 0

    catch_up(hub.settings, hub.bootstrap)
    store = open_store(hub.settings)
    try:
        rows = find(store, AuditQuery())
    finally:
        store.close()
    by_outcome = Counter(row.record["outcome"] for row in rows)
    assert by_outcome["allow"] > 0
    assert by_outcome["deny"] > 0
    for outcome in ("allow", "deny", "error"):
        assert _sum(samples, "signalhub_decisions_total", outcome=outcome) == by_outcome[outcome]
    allowed_per_subscriber = Counter(
        row.record["subscriber"] for row in rows if row.record["outcome"] == "allow"
    )
    for subscriber, count in allowed_per_subscriber.items():
        assert _sum(samples, "signalhub_deliveries_total", subscriber=subscriber) == count
    signals = {row.record["signal_id"] for row in rows}
    assert _sum(samples, "signalhub_signals_total") == len(signals)
    # Per source agency, from the envelope: the same split the audit records.
    audited_sources: Counter[tuple[str, str]] = Counter()
    seen: set[str] = set()
    for row in rows:
        if row.record["signal_id"] not in seen:
            seen.add(row.record["signal_id"])
            audited_sources[(row.record["signal_type"], row.record["source_agency"])] += 1
    assert len(audited_sources) > 1
    for (signal_type, source), count in audited_sources.items():
        assert (
            _sum(samples, "signalhub_signals_total", signal_type=signal_type, source_agency=source)
            == count
        )
    assert _sum(samples, "signalhub_dead_letters_total") == 2
    assert _sum(samples, "signalhub_dead_letters_total", reason="wrong_topic") == 1
    assert _sum(samples, "signalhub_decision_seconds_count") == len(signals)
    assert _sum(samples, "signalhub_end_to_end_seconds_count") == by_outcome["allow"]
    assert 0 < _sum(samples, "signalhub_policy_memo_hit_ratio") < 1


def test_lag_comes_to_zero_once_the_enforcer_has_processed_everything(hub: ConsoleHub) -> None:
    deadline = time.monotonic() + 30
    with hub.client() as client:
        while True:
            body = client.get("/readyz").json()
            if body["lag"] and not any(body["lag"].values()):
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
        assert body["ready"] is True
        names = {c["name"] for c in body["checks"]}
        assert names == {"broker", "enforcer", "policy", "audit store", "audit ingest"}
        assert body["policy_version"].startswith("sha256:")
        assert client.get("/healthz").status_code == 200
        text = client.get("/metrics").text
    samples = _samples(text)
    assert _sum(samples, "signalhub_topic_records_seen") == _sum(
        samples, "signalhub_enforcer_position"
    )


def test_the_dlq_page_masks_identifiers_and_shows_reasons(hub: ConsoleHub) -> None:
    with hub.client() as client:
        login(client, "olga")
        page = client.get("/console/dlq").text
    assert "wrong_topic" in page
    assert "•••" in page
    assert WRONG_TOPIC_BSN not in page
    assert WRONG_TOPIC_NAME not in page
    assert "Teststraat" not in page
    assert "console-test-1" not in page  # the agency's record key
    assert "not decodable" in page  # the foreign bytes: size and digest only


def test_the_matrix_page_shows_generalised_fields_the_envelope_and_the_source(
    hub: ConsoleHub,
) -> None:
    with hub.client() as client:
        login(client, "sam")
        page = client.get("/console/policy/matrix")
    assert page.status_code == 200
    assert "<th>Source</th>" in page.text
    assert "<th>How</th>" in page.text
    assert "<td>postcode_area</td>" in page.text
    assert '<td class="generalised">generalised</td>' in page.text
    assert "<td>envelope.source_ref</td>" in page.text


def test_operators_are_refused_the_policy_pages_and_api(hub: ConsoleHub) -> None:
    with hub.client() as client:
        csrf = login(client, "olga")
        assert client.get("/console/policy").status_code == 403
        assert client.get("/console/policy/history").status_code == 403
        answer = client.post(
            "/console/api/policy/publish",
            json={"message": "operator tries"},
            headers={"X-CSRF-Token": csrf},
        )
        assert answer.status_code == 403
        form = client.post(
            "/console/policy",
            data={"csrf_token": csrf, "action": "publish", "message": "operator tries"},
        )
        assert form.status_code == 403
        assert client.get("/console/audit").status_code == 403


def test_auditors_read_the_audit_only(hub: ConsoleHub) -> None:
    with hub.client() as client:
        csrf = login(client, "anna")
        assert client.get("/console/dashboard").status_code == 403
        assert client.get("/console/dlq").status_code == 403
        assert client.get("/console/policy").status_code == 403
        found = client.post(
            "/console/audit", data={"csrf_token": csrf, "subscriber": "gemeente", "outcome": ""}
        )
        assert found.status_code == 200
        assert "decision(s)" in found.text
        assert "gemeente" in found.text
        assert "<th>Generalised</th>" in found.text


def test_a_state_changing_request_without_the_csrf_token_is_refused(hub: ConsoleHub) -> None:
    with hub.client() as client:
        login(client, "sam")
        answer = client.post("/console/policy", data={"action": "save", "file": "x"})
        assert answer.status_code == 403
        api = client.post("/console/api/policy/publish", json={"message": "m"})
        assert api.status_code == 403


def test_failed_logins_are_limited_and_audited(hub: ConsoleHub, tmp_path: Path) -> None:
    from signalhub.console.audit_log import ConsoleAuditLog
    from signalhub.console.auth import console_dir

    with hub.client() as client:
        statuses = []
        for _ in range(7):
            page = client.get("/console/login")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            answer = client.post(
                "/console/login",
                data={"username": "mallory", "password": "wrong password!", "csrf_token": token},
            )
            statuses.append(answer.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    log = ConsoleAuditLog(console_dir(hub.settings.state_dir) / "audit.jsonl")
    assert len(log.entries("login_failed")) >= 5
    assert log.entries("login_refused")
    assert log.verify() == []


def test_the_wijkbeeld_page_is_served_to_every_role_and_only_after_login(hub: ConsoleHub) -> None:
    with hub.client() as client:
        assert client.get("/console/wijkbeeld").status_code == 303  # to the login page
        for user in ("olga", "sam", "anna"):
            login(client, user)
            page = client.get("/console/wijkbeeld")
            assert page.status_code == 200, user
            assert "<html" in page.text.lower()
            assert "wijkbeeld" in page.text.lower()
