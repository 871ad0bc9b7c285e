"""The console in real headless Chromium (Debian's ``chromium``, driven by Playwright).

The acceptance of issue 6: after demo traffic the dashboard shows non-zero counts that match
``/metrics``; a policy edit with a syntax error shows the error at its line and cannot be
published; a valid edit published from the page changes the version in force and the deliveries
that follow; an operator cannot reach the publish action. The screenshots in docs/ are taken
here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    WRONG_TOPIC_BSN,
    ConsoleHub,
    console_hub,
)
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import read_deliveries
from signalhub.enforcer.metrics import parse_metrics

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

DOCS = Path(__file__).parents[1] / "docs"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleHub]:
    with (
        pytest.MonkeyPatch.context() as patch,
        console_hub(tmp_path_factory.mktemp("console-browser"), patch) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page_as(browser: Any, hub: ConsoleHub) -> Iterator[Any]:
    contexts: list[Any] = []

    def open_as(user: str) -> Any:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{hub.url}/console/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        return page

    yield open_as
    for context in contexts:
        context.close()


def _metrics(hub: ConsoleHub) -> Any:
    return parse_metrics(httpx.get(f"{hub.url}/metrics", timeout=30).text)


def test_the_dashboard_shows_non_zero_counts_that_match_metrics(
    hub: ConsoleHub, page_as: Any
) -> None:
    page = page_as("olga")
    assert page.url.endswith("/console/dashboard")
    time.sleep(1.5)  # a few throughput samples for the chart
    page.reload()
    page.wait_for_timeout(800)
    metrics = _metrics(hub)

    def shown(name: str) -> int:
        return int(page.inner_text(f"[data-metric={name}]"))

    expected = {
        "signals": metrics.total("signalhub_signals_total"),
        "deliveries": metrics.total("signalhub_deliveries_total"),
        "dead_letters": metrics.total("signalhub_dead_letters_total"),
        "decisions_allow": metrics.total("signalhub_decisions_total", outcome="allow"),
        "decisions_deny": metrics.total("signalhub_decisions_total", outcome="deny"),
    }
    for name, value in expected.items():
        assert value > 0, name
        assert shown(name) == value, name
    for subscriber, value in metrics.by_label("signalhub_deliveries_total", "subscriber").items():
        assert shown(f"deliveries_{subscriber}") == value
    version = page.inner_text("#policy-version")
    assert version.startswith("sha256:")
    assert page.inner_text("#worker-status") == "running"
    page.screenshot(path=str(DOCS / "console-dashboard.png"), full_page=True)


def test_the_dlq_masks_identifiers_and_replays_a_selected_record(
    hub: ConsoleHub, page_as: Any
) -> None:
    page = page_as("olga")
    page.goto(f"{hub.url}/console/dlq")
    content = page.content()
    assert WRONG_TOPIC_BSN not in content
    assert page.locator("#dlq tr[data-ref]").count() == 2
    page.screenshot(path=str(DOCS / "console-dlq.png"), full_page=True)
    row = page.locator("#dlq tr[data-ref]", has_text="wrong_topic")
    row.locator("input[type=checkbox]").check()
    page.click("#replay")
    page.wait_for_load_state()
    assert "replayed 1 record(s)" in page.inner_text("#dlq-message")
    # The replayed bytes are back on their topic; still on the wrong one, so dead-lettered again.
    deadline = time.monotonic() + 30
    while _metrics(hub).total("signalhub_dead_letters_total", reason="wrong_topic") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    page.goto(f"{hub.url}/console/dlq")
    assert page.locator("#dlq tr[data-ref]").count() == 3
    assert WRONG_TOPIC_BSN not in page.content()


def test_an_operator_cannot_reach_the_publish_action(hub: ConsoleHub, page_as: Any) -> None:
    page = page_as("olga")
    assert page.locator("header nav a", has_text="Policy").count() == 0
    response = page.goto(f"{hub.url}/console/policy")
    assert response.status == 403
    assert "may not" in page.inner_text("#forbidden")
    page.goto(f"{hub.url}/console/dashboard")
    csrf = page.input_value("form.logout input[name=csrf_token]")
    status = page.evaluate(
        """async (csrf) => (await fetch('/console/api/policy/publish', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
            body: JSON.stringify({message: 'operator tries'})})).status""",
        csrf,
    )
    assert status == 403


def test_a_syntax_error_is_shown_at_its_line_and_cannot_be_published(
    hub: ConsoleHub, page_as: Any
) -> None:
    page = page_as("sam")
    page.goto(f"{hub.url}/console/policy")
    before = page.inner_text("#in-force")
    text = page.input_value("#text")
    lines = text.split("\n")
    lines.insert(11, "broken_rule if {{ not closed")  # becomes line 12
    page.fill("#text", "\n".join(lines))
    page.click("#check")
    page.wait_for_load_state()
    problem = page.locator("#problems li.problem").first
    assert problem.get_attribute("data-line") == "12"
    assert problem.get_attribute("data-file") == "signalhub/sharing/sharing.rego"
    assert "error-line" in (page.get_attribute("#line-12", "class") or "")
    page.screenshot(path=str(DOCS / "console-policy-error.png"), full_page=False)
    page.fill("#message", "this must not go out")
    page.click("#publish")
    page.wait_for_load_state()
    assert "refused" in page.inner_text("#error")
    assert page.locator("#problems li.problem[data-line='12']").count() >= 1
    assert page.inner_text("#in-force") == before
    assert _metrics(hub).labelled("signalhub_policy_loaded")[0][0]["policy_version"] == before


def test_a_valid_edit_published_from_the_page_changes_the_version_and_the_deliveries(
    hub: ConsoleHub, page_as: Any
) -> None:
    page = page_as("sam")
    page.goto(f"{hub.url}/console/policy")
    page.click("button[value=reset]")
    page.wait_for_load_state()
    before = page.inner_text("#in-force")
    page.goto(f"{hub.url}/console/policy?file=data/agreements.json")
    agreements = json.loads(page.input_value("#text"))
    key = "nuisance_report/gemeente/public_order"
    assert "reporter_type" in agreements[key]["fields"]
    agreements[key]["fields"].remove("reporter_type")
    page.fill("#text", json.dumps(agreements, indent=2, ensure_ascii=False) + "\n")
    page.click("#diff")
    page.wait_for_load_state()
    assert "newly withheld" in page.inner_text("#output")
    assert "reporter_type" in page.inner_text("#output")
    page.fill("#message", "gemeente no longer needs the reporter type")
    page.click("#publish")
    page.wait_for_load_state(timeout=120_000)
    output = page.inner_text("#output")
    assert output.startswith("published sha256:"), output
    after = output.split()[1].rstrip(":")
    assert after != before
    assert page.inner_text("#in-force") == after
    # The enforcer switches without a restart; the dashboard shows the new version.
    deadline = time.monotonic() + 60
    while _metrics(hub).labelled("signalhub_policy_loaded")[0][0]["policy_version"] != after:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    page.goto(f"{hub.url}/console/dashboard")
    assert page.inner_text("#policy-version") == after
    # The deliveries that follow are made under the new version, without the field.
    hub.publish_samples()
    deadline = time.monotonic() + 90
    new: list[Any] = []
    with ViewSchemaCatalog(hub.bootstrap, hub.registry) as catalog:
        while not new:
            assert time.monotonic() < deadline, "no delivery under the new policy version"
            new = [
                d
                for d in read_deliveries(hub.bootstrap, "gemeente", catalog, idle_ms=500)
                if d.policy_version == after and d.signal_type == "nuisance_report"
            ]
        old = [
            d
            for d in read_deliveries(hub.bootstrap, "gemeente", catalog, idle_ms=500)
            if d.policy_version == before and d.signal_type == "nuisance_report"
        ]
    assert old
    assert "reporter_type" in old[0].record["payload"]
    for delivery in new:
        assert "reporter_type" not in delivery.record["payload"]
        assert "reporter_type" in delivery.record["delivery"]["withheld"]
    page.goto(f"{hub.url}/console/dashboard")  # now with traffic on the throughput chart
    page.wait_for_timeout(2500)
    page.screenshot(path=str(DOCS / "console-dashboard.png"), full_page=True)
    page.goto(f"{hub.url}/console/policy/history")
    assert "gemeente no longer needs the reporter type" in page.inner_text("#history")
    page.screenshot(path=str(DOCS / "console-policy-history.png"), full_page=True)


def test_screenshots_of_the_matrix_and_the_audit_search(hub: ConsoleHub, page_as: Any) -> None:
    page = page_as("sam")
    page.goto(f"{hub.url}/console/policy/matrix")
    assert page.locator("#matrix tr").count() > 10
    page.screenshot(path=str(DOCS / "console-matrix.png"), full_page=False)
    page.goto(f"{hub.url}/console/audit")
    page.select_option("#subscriber", "woningcorporatie")
    page.click("#search")
    page.wait_for_load_state()
    assert "decision(s)" in page.inner_text("#audit-count")
    page.screenshot(path=str(DOCS / "console-audit.png"), full_page=False)
