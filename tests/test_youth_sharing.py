"""Youth care and education as sources (issue 19): who their signals reach, through the
enforcer's core with the shipped connectors, subscriptions and policy on the embedded engine.

Strict by default: on top of the shipped subscriptions, every subscriber also asks for the
youth-care and school-absence types under each purpose and legal basis it already holds, so a
signal reaching a subscriber the agreements do not name would show here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from signalhub.audit import record as audit_record
from signalhub.config import load_settings
from signalhub.connector import Mapper, load_definitions
from signalhub.enforcer.core import Enforcement, SourceRecord
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, by_signal_type, load_subscriptions
from signalhub.wire import AUDIT_TOPIC

SETTINGS = load_settings()
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
YOUTH_TYPES = ("youth_protection_concern", "school_absence")
BSN = "111222333"
NAME = "Noor Jeugdtest-qxzvy"


@pytest.fixture(scope="module")
def policy() -> Iterator[EmbeddedPolicyEngine]:
    engine = EmbeddedPolicyEngine.from_dir(SETTINGS.policies_dir)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    registry = SchemaRegistry.from_dir(SETTINGS.schemas_dir)
    registry.register(audit_record.load_audit_schema(SETTINGS.schemas_dir))
    return registry


@pytest.fixture(scope="module")
def everyone_asks() -> Mapping[str, Sequence[Subscription]]:
    """The shipped subscriptions, plus a request for both youth types from every other one."""
    shipped = load_subscriptions(SETTINGS.subscriptions_file)
    asking = [
        s.model_copy(update={"id": f"{s.id}-asks", "signal_types": YOUTH_TYPES})
        for s in shipped
        if not set(YOUTH_TYPES) & set(s.signal_types)
    ]
    return by_signal_type([*shipped, *asking])


def _enforce(
    registry: SchemaRegistry,
    policy: EmbeddedPolicyEngine,
    subscriptions: Mapping[str, Sequence[Subscription]],
    connector: str,
    raw: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(delivered view per subscriber, audit decisions) for one raw record of ``connector``."""
    definition = load_definitions(SETTINGS.connectors_dir)[connector]
    schema, record = Mapper(definition, registry, clock=lambda: NOW).map(raw, "test:1")
    value = codec.encode(registry, schema.avro, record)
    core = Enforcement(
        registry,
        subscriptions,
        policy,
        Pseudonymiser(b"y" * 32),
        audit_record.load_audit_schema(SETTINGS.schemas_dir),
        max_record_bytes=64 * 1024,
        clock=lambda: NOW,
    )
    outputs = core.process(SourceRecord(schema.topic, 0, 1, b"k", value))
    delivered = {
        o.topic.removeprefix("deliveries."): codec.decode(registry, o.value)[1]
        for o in outputs
        if o.topic.startswith("deliveries.")
    }
    entries = [codec.decode(registry, o.value)[1] for o in outputs if o.topic == AUDIT_TOPIC]
    decisions = [d for entry in entries for d in audit_record.decisions_in(entry)]
    return delivered, decisions


def _concern(code: str, ernst: int, born: str = "2010-05-17") -> dict[str, Any]:
    return {
        "meldingnummer": f"JZ-T-{code}-{ernst}",
        "soort_zorg": code,
        "meldingsdatum": "2026-02-20T10:00:00+01:00",
        "jeugdige": {"bsn": BSN, "naam": NAME, "geboortedatum": born},
        "verblijfadres": {
            "adres": "Kapoenstraat 12, Maastricht",
            "postcode": "6211 AB",
            "buurtcode": "BU09350101",
        },
        "ernst": ernst,
        "urgentie": "spoed",
        "toelichting": "Vertrouwelijk verslag van de jeugdbeschermer.",
    }


def _absence(code: str, hours: str, weeks: str, born: str = "17-05-2011") -> dict[str, Any]:
    return {
        "verzuimmelding_id": f"VZL-T-{code}-{hours}",
        "verzuimsoort": code,
        "datum_melding": "20-02-2026",
        "bsn_leerling": BSN,
        "naam_leerling": NAME,
        "geboortedatum_leerling": born,
        "school": "Sint-Maartenscollege",
        "buurtcode_school": "BU09350202",
        "uren_verzuim": hours,
        "weken_verzuim": weeks,
        "toelichting": "Vertrouwelijk: thuissituatie besproken.",
    }


@pytest.mark.parametrize(
    ("raw", "receivers"),
    [
        pytest.param(
            _concern("CRIMINELE_UITBUITING", 4), {"zvh", "gemeente", "politie"}, id="exploitation"
        ),
        pytest.param(_concern("DRUGSHANDEL", 3), {"zvh", "gemeente"}, id="dealing-below-4"),
        pytest.param(_concern("JEUGDBESCHERMING", 5), {"zvh", "gemeente"}, id="home-severity-5"),
        pytest.param(_concern("HUISELIJK_GEWELD", 2), {"zvh"}, id="home-severity-2"),
        pytest.param(_concern("CRIMINELE_UITBUITING", 1), set(), id="severity-1"),
    ],
)
def test_a_youth_care_signal_reaches_only_the_subscribers_its_agreements_name(
    registry: SchemaRegistry,
    policy: EmbeddedPolicyEngine,
    everyone_asks: Mapping[str, Sequence[Subscription]],
    raw: dict[str, Any],
    receivers: set[str],
) -> None:
    delivered, decisions = _enforce(registry, policy, everyone_asks, "jeugdzorg", raw)

    assert set(delivered) == receivers
    allowed = {
        (d["subscriber"], d["subscription_id"]) for d in decisions if d["outcome"] == "allow"
    }
    named = {
        ("zvh", "zvh-jeugd"),
        ("gemeente", "gemeente-jeugdhulp"),
        ("politie", "politie-jeugduitbuiting"),
    }
    assert allowed == {pair for pair in named if pair[0] in receivers}
    asked = {d["subscriber"] for d in decisions}
    assert asked >= {"om", "jeugdzorg", "woningcorporatie", "reclassering", "schuldhulpverlening"}
    for subscriber, view in delivered.items():
        payload = view["payload"]
        assert BSN not in str(view), subscriber
        assert payload["subject_birth_date"] == "12-17"  # the age band, not the date
        for withheld in ("address", "postcode", "description"):
            assert withheld not in payload, (subscriber, withheld)
            assert withheld in view["delivery"]["withheld"], (subscriber, withheld)
    if "gemeente" in delivered:
        assert NAME not in str(delivered["gemeente"])
    if "zvh" in delivered:
        assert delivered["zvh"]["delivery"]["pseudonym_domain"] == "zvh-casework"
        assert delivered["zvh"]["payload"]["subject_name"] == NAME


@pytest.mark.parametrize(
    ("raw", "receivers"),
    [
        pytest.param(_absence("RELATIEF", "24", "5"), {"gemeente", "zvh", "jeugdzorg"}, id="minor"),
        pytest.param(_absence("RELATIEF", "24", "2"), {"gemeente", "jeugdzorg"}, id="two-weeks"),
        pytest.param(_absence("RELATIEF", "8", "2"), {"gemeente"}, id="below-16-hours"),
        pytest.param(_absence("LUXE", "", "1"), {"gemeente"}, id="holiday"),
        pytest.param(
            _absence("VSV", "", "6", born="17-05-2005"), {"gemeente", "zvh"}, id="school-leaver"
        ),
    ],
)
def test_a_school_absence_reaches_leerplicht_and_under_conditions_casework_and_youth_care(
    registry: SchemaRegistry,
    policy: EmbeddedPolicyEngine,
    everyone_asks: Mapping[str, Sequence[Subscription]],
    raw: dict[str, Any],
    receivers: set[str],
) -> None:
    delivered, _ = _enforce(registry, policy, everyone_asks, "onderwijs", raw)

    assert set(delivered) == receivers
    for subscriber, view in delivered.items():
        assert BSN not in str(view), subscriber
        assert "Vertrouwelijk" not in str(view), subscriber
    assert delivered["gemeente"]["payload"]["school_name"] == "Sint-Maartenscollege"
    if "jeugdzorg" in delivered:
        assert NAME not in str(delivered["jeugdzorg"])
