"""Issue 8's acceptance on the real embedded broker: bundler process + enforcer process.

A planted pattern (one person reported by police, housing corporation and debt counselling
within 90 days) raises exactly one casework_alert, also when the bundler is SIGKILLed between
the second and the third signal; the enforcer delivers it to zvh only, without content. Two
similar people below the threshold raise none. Hit/no-hit and the wijkbeeld read the same state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bundling_support import about, encoded
from hub_support import Hub, new_person, read_topics, running_hub
from signalhub.apps.stack import BundlerProcess
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.bundling import (
    BUNDLING_DOMAIN,
    CASEWORK_DOMAIN,
    BundleStore,
    ask_hit_no_hit,
    cells,
    read_log,
    store_path,
    verify_log,
)
from signalhub.cli import cli
from signalhub.config import settings_env
from signalhub.connector.publisher import KafkaPublisher
from signalhub.schema import codec
from signalhub.types import Record
from signalhub.wire import bundle_id

pytestmark = pytest.mark.integration

ALERT_TOPIC = "signals.casework_alert"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A broker of its own, so every signal and alert on it is this module's."""
    state = tmp_path_factory.mktemp("bundling-hub")
    with (
        EmbeddedBroker() as broker,
        running_hub(broker.bootstrap_servers, state, f"bundling-{uuid.uuid4().hex[:8]}") as hub,
    ):
        yield hub


def _publish(hub: Hub, signals: list[Record]) -> list[str]:
    publisher = KafkaPublisher(hub.bootstrap)
    try:
        for signal in signals:
            publisher.publish(*encoded(hub.registry, signal))
            hub.signals[signal["envelope"]["signal_id"]] = signal
        publisher.flush()
    finally:
        publisher.close()
    return [s["envelope"]["signal_id"] for s in signals]


def _bundled(hub: Hub, ids: list[str], bundler: BundlerProcess, timeout_s: float = 60) -> None:
    """Wait until the bundler has committed these signals to its state."""
    deadline = time.monotonic() + timeout_s
    marks = ",".join("?" * len(ids))
    while True:
        bundler.check_alive()
        if store_path(hub.settings.state_dir).exists():
            with BundleStore(store_path(hub.settings.state_dir)) as store:
                rows = store.execute(
                    f"SELECT count(*) FROM signals WHERE signal_id IN ({marks})", tuple(ids)
                )
            if int(str(rows[0][0])) == len(ids):
                return
        assert time.monotonic() < deadline, "the bundler did not take up the signals"
        time.sleep(0.2)


def _alerts(hub: Hub) -> list[tuple[bytes, dict[str, Any]]]:
    found = []
    for message in read_topics(hub.bootstrap, [ALERT_TOPIC]):
        _, record = codec.decode(hub.registry, bytes(message.value))
        found.append((bytes(message.value), record))
    return found


def _zvh_alerts(hub: Hub, signal_id: str, timeout_s: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            d
            for d in hub.deliveries([signal_id])
            if d.decoded.record["envelope"]["signal_type"] == "casework_alert"
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_planted_pattern_alerts_once_across_a_bundler_crash(hub: Hub, tmp_path: Path) -> None:
    planted, pair, spread = new_person(), new_person(), new_person()
    r = hub.registry
    bundler = BundlerProcess(hub.bootstrap, tmp_path / "bundler.log", settings_env(hub.settings))
    bundler.start()
    try:
        before = _publish(
            hub,
            [
                about(r, planted, "politie", 0),
                about(r, planted, "woningcorporatie", 30),
                about(r, pair, "politie", 0),
                about(r, pair, "woningcorporatie", 10),
                about(r, spread, "politie", 0),
                about(r, spread, "woningcorporatie", 60),
            ],
        )
        _bundled(hub, before, bundler)
        bundler.kill()  # SIGKILL between the second and the third signal of the pattern
        after = _publish(
            hub,
            [
                about(r, planted, "schuldhulpverlening", 75),
                about(r, spread, "schuldhulpverlening", 160),
            ],
        )
        bundler.start()
        _bundled(hub, after, bundler)
        hub.wait_accounted(before + after, timeout_s=90)

        alerts = _alerts(hub)
        assert len(alerts) == 1, [a[1]["payload"] for a in alerts]
        value, alert = alerts[0]
        payload = alert["payload"]
        assert alert["envelope"]["source_agency"] == "signalhub"
        assert payload["bundle_id"] == bundle_id(
            hub.pseudonymiser.pseudonym(BUNDLING_DOMAIN, "bsn", planted.bsn)
        )
        assert payload["agencies"] == ["politie", "schuldhulpverlening", "woningcorporatie"]
        assert payload["signal_types"] == ["debt_signal", "nuisance_report"]
        assert (payload["signal_count"], payload["revision"]) == (3, 1)
        assert payload["rule"] == "multi_agency_90_days"
        for secret in (*planted.identifiers(), planted.postcode, "Vertrouwelijke"):
            assert secret.encode() not in value

        # The enforcer routes it by policy: to zvh only, the subject as zvh's own pseudonym.
        alert_id = alert["envelope"]["signal_id"]
        hub.wait_accounted([alert_id])
        delivered = _zvh_alerts(hub, alert_id)
        assert [d.subscriber for d in delivered] == ["zvh"]
        assert delivered[0].payload["subject_ref"] == hub.pseudonymiser.pseudonym(
            CASEWORK_DOMAIN, "bsn", planted.bsn
        )
        assert delivered[0].payload["agencies"] == payload["agencies"]
        assert delivered[0].payload["bundle_id"] == hub.pseudonymiser.domain_id(
            CASEWORK_DOMAIN, "bundle_id", payload["bundle_id"]
        ), "zvh follows the bundle by its own id of it"
        for secret in (*planted.identifiers(), "Vertrouwelijke"):
            assert secret.encode() not in delivered[0].value

        # Hit/no-hit answers match the signals present; a non-partner is refused; all logged.
        settings = hub.settings
        hit = ask_hit_no_hit(settings, "zvh", planted.bsn)
        assert (hit.known, hit.partners) == (
            True,
            ("politie", "schuldhulpverlening", "woningcorporatie"),
        )
        assert ask_hit_no_hit(settings, "politie", pair.bsn).partners == (
            "politie",
            "woningcorporatie",
        )
        miss = ask_hit_no_hit(settings, "om", new_person().bsn)
        assert (miss.allowed, miss.known) == (True, False)
        refused = ask_hit_no_hit(settings, "woningcorporatie", planted.bsn)
        assert (refused.allowed, refused.partners) == (False, ())

        env = settings_env(settings)
        runner = CliRunner()
        denied = runner.invoke(cli, ["hit-no-hit", "--asker", "jeugdzorg", planted.bsn], env=env)
        assert denied.exit_code != 0
        assert "refused" in denied.output
        answered = runner.invoke(cli, ["hit-no-hit", "--asker", "gemeente", spread.bsn], env=env)
        assert answered.exit_code == 0, answered.output
        assert "hit: known to politie, schuldhulpverlening, woningcorporatie" in answered.output
        with BundleStore(store_path(settings.state_dir)) as store:
            log = read_log(store)
            assert [(e.asker, e.allowed) for e in log] == [
                ("zvh", True),
                ("politie", True),
                ("om", True),
                ("woningcorporatie", False),
                ("jeugdzorg", False),
                ("gemeente", True),
            ]
            assert verify_log(store) == []

            # Wijkbeeld: totals match the signals ingested, no shown count below k.
            found = cells(store)
        assert sum(cell.count for cell in found) == len(before + after)
        table = runner.invoke(cli, ["wijkbeeld"], env=env)
        assert table.exit_code == 0, table.output
        k = settings.wijkbeeld_k
        for line in table.output.splitlines()[1:]:
            shown = line.rsplit(",", 1)[1]
            assert shown == f"<{k}" or int(shown) >= k, line
        page = tmp_path / "wijkbeeld.html"
        html = runner.invoke(cli, ["wijkbeeld", "--format", "html", "--output", str(page)], env=env)
        assert html.exit_code == 0
        assert "<svg" in page.read_text()
    finally:
        bundler.stop()
