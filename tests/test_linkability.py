"""No value links two pseudonym domains unless the policy grants it to both.

Two subscribers in different pseudonym domains that receive the same signal must not be able to
join their deliveries: then their pseudonyms of one person could be joined too. Before the
envelope was decided per delivery, every delivery of a signal carried the same ``signal_id``,
the agency's ``source_ref`` and millisecond timestamps (100 of 174 demo signals reached
subscribers in different domains under one id).

Every sample signal of every connector, and the casework alerts the bundler raises over them,
run through the enforcer core with the shipped policy; for every pair of deliveries of one signal
in different domains, every leaf value they share must be on the list below or a payload field
the policy grants both of them (clear or generalised) — never a hub id such as a bundle id.

The shipped policy gives casework alerts to zvh alone, so one more agreement gives them to a
partner in its own domain (:data:`SECOND_ALERT_AGREEMENT`): with one recipient nothing could
show a value an alert shares across domains. Before hub ids in payloads were derived per domain,
that partner received zvh's very ``bundle_id``.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from linkability_support import Granted, cross_domain_links, granted_paths
from signalhub.apps.demo import find_inputs
from signalhub.audit import record as audit_record
from signalhub.bundling import Bundler, BundleStore, BundlingPolicy
from signalhub.config import load_settings
from signalhub.connector import CollectingPublisher, ConnectorRunner, RejectList, load_definitions
from signalhub.connector.sources import open_source
from signalhub.enforcer.core import Enforcement, SourceRecord
from signalhub.enforcer.envelope import domain_signal_id, project_envelope
from signalhub.policy.decision import Decision
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions
from signalhub.wire import AUDIT_TOPIC, BLOCKED_TOPIC

SETTINGS = load_settings()
PSEUDONYMISER = Pseudonymiser(b"linkability-test-key-0123456789ab")
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
#: A second partner for casework alerts, in its own pseudonym domain (the subscriber's name):
#: zvh's agreement but for ``subject_ref``, zvh-casework's own pseudonym of the subject.
SECOND_ALERT_AGREEMENT = "casework_alert/gemeente/public_order"
_SECOND_ALERT_SUBSCRIPTION = """
[[subscription]]
id = "gemeente-casework-alerts"
subscriber = "gemeente"
signal_types = ["casework_alert"]
purpose = "public_order"
legal_basis = "Gemeentewet art. 172"
channel = "kafka"
"""


def _with_a_second_alert_recipient(scratch: Path) -> tuple[Path, Path]:
    """(policies dir, subscriptions file): the shipped ones plus the second alert partner."""
    policies = scratch / "policies"
    shutil.copytree(SETTINGS.policies_dir, policies)
    agreements_file = policies / "data" / "agreements.json"
    agreements = json.loads(agreements_file.read_text(encoding="utf-8"))
    zvh = agreements["casework_alert/zvh/casework"]
    agreements[SECOND_ALERT_AGREEMENT] = {
        **{key: value for key, value in zvh.items() if key not in ("domain", "note")},
        "legal_basis": "Gemeentewet art. 172",
        "fields": [name for name in zvh["fields"] if name != "subject_ref"],
    }
    agreements_file.write_text(json.dumps(agreements), encoding="utf-8")
    subscriptions = scratch / "subscriptions.toml"
    shipped = SETTINGS.subscriptions_file.read_text(encoding="utf-8")
    subscriptions.write_text(shipped + _SECOND_ALERT_SUBSCRIPTION, encoding="utf-8")
    return policies, subscriptions


@pytest.fixture(scope="module")
def enforced(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list[Any]], Granted]:
    """Every sample signal and casework alert enforced: signal id -> its decoded deliveries,
    and what each decision granted in clear or generalised ((signal id, subscriber) -> payload
    paths)."""
    scratch = tmp_path_factory.mktemp("linkability")
    policies, subscriptions = _with_a_second_alert_recipient(scratch)
    registry = SchemaRegistry.from_dir(SETTINGS.schemas_dir)
    registry.register(audit_record.load_audit_schema(SETTINGS.schemas_dir))
    definitions = load_definitions(SETTINGS.connectors_dir)
    publisher = CollectingPublisher()
    for name, location in find_inputs(definitions, None, SETTINGS.connectors_dir):
        runner = ConnectorRunner(
            definitions[name],
            registry,
            publisher,
            rejects=RejectList(),
            max_record_bytes=SETTINGS.max_record_bytes,
        )
        runner.run(open_source(definitions[name], location, state=scratch / f"{name}.sqlite"))
    signals = [
        SourceRecord(topic, 0, offset, key, value)
        for offset, (topic, key, value) in enumerate(publisher.sent)
    ]
    engine = EmbeddedPolicyEngine.from_dir(policies)
    found: dict[str, list[Any]] = defaultdict(list)
    granted: Granted = {}
    try:
        with BundleStore(scratch / "bundling.sqlite") as store:
            bundler = Bundler(registry, store, BundlingPolicy(engine), PSEUDONYMISER)
            alerts = bundler.outputs(bundler.process(signals))
        raised = [
            SourceRecord(a.topic, 0, offset, a.key, a.value) for offset, a in enumerate(alerts)
        ]
        core = Enforcement(
            registry,
            by_signal_type(load_subscriptions(subscriptions)),
            engine,
            PSEUDONYMISER,
            audit_record.load_audit_schema(SETTINGS.schemas_dir),
            max_record_bytes=SETTINGS.max_record_bytes,
            clock=lambda: NOW,
        )
        for record in [*signals, *raised]:
            signal_id = (record.key or b"").decode()
            for output in core.process(record):
                if output.topic == AUDIT_TOPIC:
                    entry = codec.decode(registry, output.value)[1]
                    for row in audit_record.decisions_in(entry):
                        granted[(signal_id, row["subscriber"])] = granted_paths(
                            row["fields_clear"], row["fields_generalised"]
                        )
                elif output.topic.startswith("deliveries.") and output.topic != BLOCKED_TOPIC:
                    found[signal_id].append(codec.decode(registry, output.value)[1])
    finally:
        engine.close()
    return found, granted


def test_no_value_links_two_domains_unless_the_policy_grants_it_to_both(
    enforced: tuple[dict[str, list[Any]], Granted],
) -> None:
    deliveries_by_signal, granted = enforced
    pairs, links, granted_to_both = cross_domain_links(deliveries_by_signal, granted)
    assert pairs > 100, "too few cross-domain pairs to show anything"
    assert links == [], f"{len(links)} linking values, e.g. {links[:5]}"
    print(
        f"\n{pairs} cross-domain delivery pairs, no linking value; shared by policy grant: "
        f"{sorted(granted_to_both)}"
    )


def test_a_casework_alert_reaches_each_domain_with_its_own_bundle_id(
    enforced: tuple[dict[str, list[Any]], Granted],
) -> None:
    deliveries_by_signal, _ = enforced
    alerts = [
        deliveries
        for deliveries in deliveries_by_signal.values()
        if deliveries[0]["envelope"]["signal_type"] == "casework_alert"
    ]
    assert alerts, "the samples raised no casework alert"
    for deliveries in alerts:
        bundle_ids = {
            d["delivery"]["pseudonym_domain"]: d["payload"]["bundle_id"] for d in deliveries
        }
        assert set(bundle_ids) == {"zvh-casework", "gemeente"}
        assert len(set(bundle_ids.values())) == 2, "one bundle id in two domains links them"


def _decision(domain: str, fields: tuple[str, ...] = (), **generalise: str) -> Decision:
    return Decision(True, fields, (), (), "v1", domain, "basis", generalise)


ENVELOPE = {
    "signal_id": "5b1f6a0e-8c1d-4b7e-9a51-0d5e1f0c9a11",
    "signal_type": "drug_signal",
    "source_agency": "politie",
    "source_ref": "PL2300-2024100259",
    "observed_at": datetime(2026, 3, 1, 22, 47, 13, 512000, tzinfo=UTC),
    "registered_at": datetime(2026, 3, 2, 9, 30, 1, 7000, tzinfo=UTC),
    "schema_version": 1,
}


class _Sink:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str, str]] = []

    def record(self, domain: str, kind: str, value: str, pseudonym: str) -> None:
        self.recorded.append((domain, kind, value, pseudonym))


def test_the_envelope_is_decided_per_domain_with_the_least_by_default() -> None:
    sink = _Sink()
    gemeente = project_envelope(ENVELOPE, _decision("gemeente"), PSEUDONYMISER, sink)
    zorg = project_envelope(ENVELOPE, _decision("zorg"), PSEUDONYMISER, sink)

    assert gemeente["signal_id"] != zorg["signal_id"] != ENVELOPE["signal_id"]
    expected = domain_signal_id(PSEUDONYMISER, "gemeente", ENVELOPE["signal_id"])
    assert gemeente["signal_id"] == expected
    assert gemeente["source_ref"].startswith("pn1.")
    assert gemeente["source_ref"] != zorg["source_ref"]
    assert ("gemeente", "source_ref", "politie:PL2300-2024100259", gemeente["source_ref"]) in (
        sink.recorded
    ), "the agency can resolve its reference through the hub's vault"
    assert gemeente["observed_at"] == datetime(2026, 3, 1, tzinfo=UTC)
    assert gemeente["registered_at"] == datetime(2026, 3, 2, tzinfo=UTC)
    assert (gemeente["signal_type"], gemeente["source_agency"]) == ("drug_signal", "politie")


def test_an_agreement_can_grant_the_reference_and_finer_times() -> None:
    granted = _decision(
        "om",
        ("envelope.source_ref", "envelope.registered_at"),
        **{"envelope.observed_at": "hour"},
    )
    envelope = project_envelope(ENVELOPE, granted, PSEUDONYMISER)
    assert envelope["source_ref"] == "PL2300-2024100259"
    assert envelope["observed_at"] == datetime(2026, 3, 1, 22, tzinfo=UTC)
    assert envelope["registered_at"] == ENVELOPE["registered_at"]
