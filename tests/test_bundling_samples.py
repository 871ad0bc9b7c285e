"""The bundler over the shipped sample data, with the shipped rules (issues 8 and 19).

Every sample connector runs over its sample into a collecting publisher, exactly as the demo
runs them, and the bundler's core takes all of it in one go: the planted person (politie,
woningcorporatie and schuldhulpverlening within 90 days) and the planted young person
(jeugdzorg, onderwijs and politie within 90 days) raise exactly one alert each, without content;
the three near misses and every other sample person raise none.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from connectors.sample_data import _STREETS, PLANTED_ALERT, PLANTED_PEOPLE, PLANTED_YOUTH_ALERT

from connector_support import SAMPLES
from signalhub.apps.demo import find_inputs
from signalhub.bundling import (
    BUNDLING_DOMAIN,
    CASEWORK_DOMAIN,
    Alert,
    Bundler,
    BundleStore,
    BundlingPolicy,
)
from signalhub.config import load_settings
from signalhub.connector import (
    CollectingPublisher,
    ConnectorRunner,
    RejectList,
    is_valid_bsn,
    load_definitions,
)
from signalhub.connector.sources import open_source
from signalhub.enforcer.outputs import SourceRecord
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.wire import bundle_id

KEY = bytes(range(32))
SETTINGS = load_settings()
REGISTRY = SchemaRegistry.from_dir(SETTINGS.schemas_dir)
#: The columns of a person's BSN, name and address per sample (dotted: nested JSON; the school
#: absence export has no address of the pupil).
_IDENTITY_COLUMNS: dict[str, tuple[str, str, str | None]] = {
    "politie.csv": ("bsn_verdachte", "naam_verdachte", "adres"),
    "woningcorporatie.csv": ("bsn_huurder", "naam_huurder", "adres"),
    "schuldhulpverlening.jsonl": ("bsn", "naam", "adres"),
    "jeugdzorg.jsonl": ("jeugdige.bsn", "jeugdige.naam", "verblijfadres.adres"),
    "onderwijs.csv": ("bsn_leerling", "naam_leerling", None),
}


@dataclass(frozen=True)
class Bundled:
    store: BundleStore
    alerts: list[Alert]
    signals: int


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundled]:
    scratch = tmp_path_factory.mktemp("bundling-samples")
    definitions = load_definitions(SETTINGS.connectors_dir)
    publisher = CollectingPublisher()
    for name, location in find_inputs(definitions, None, SETTINGS.connectors_dir):
        runner = ConnectorRunner(
            definitions[name],
            REGISTRY,
            publisher,
            rejects=RejectList(),
            max_record_bytes=SETTINGS.max_record_bytes,
        )
        state = scratch / f"{name}-watermarks.sqlite"
        runner.run(open_source(definitions[name], location, state=state))
    records = [
        SourceRecord(topic, 0, offset, key, value)
        for offset, (topic, key, value) in enumerate(publisher.sent)
    ]
    engine = EmbeddedPolicyEngine.from_dir(SETTINGS.policies_dir)
    with BundleStore(scratch / "bundling.sqlite") as store:
        bundler = Bundler(REGISTRY, store, BundlingPolicy(engine), Pseudonymiser(KEY))
        yield Bundled(store, bundler.process(records), len(records))
    engine.close()


def _planted() -> dict[str, list[dict[str, str]]]:
    """Per planted person (label): their records' BSN, name and address, read by reference."""
    manifest: dict[str, dict[str, str]] = json.loads((SAMPLES / "manifest.json").read_text())
    found: dict[str, list[dict[str, str]]] = {}
    for ref, label in manifest[PLANTED_PEOPLE].items():
        name, line = ref.rsplit(":", 1)
        text = (SAMPLES / name).read_text(encoding="utf-8").splitlines()[int(line) - 1]
        if name.endswith(".csv"):
            header = (SAMPLES / name).read_text(encoding="utf-8").splitlines()[0]
            row = dict(zip(*csv.reader([header, text], delimiter=";"), strict=True))
        else:
            row = json.loads(text)
        bsn, person, address = (_column(row, column) for column in _IDENTITY_COLUMNS[name])
        found.setdefault(label, []).append(
            {"agency": name.split(".")[0], "bsn": bsn, "name": person, "address": address}
        )
    return found


def _column(row: dict[str, Any], column: str | None) -> str:
    """A (dotted) column's value as text; "" for no column."""
    value: Any = row
    for part in column.split(".") if column else ():
        value = value[part]
    return str(value) if column else ""


def _sample_bsns() -> set[str]:
    found: set[str] = set()
    for path in SAMPLES.iterdir():
        text = path.read_bytes().decode("utf-8", "replace")
        found |= {m for m in re.findall(r"(?<!\d)\d{9}(?!\d)", text) if is_valid_bsn(m)}
    return found


def test_each_planted_person_is_one_consistent_person() -> None:
    planted = _planted()
    assert {label: sorted(r["agency"] for r in rows) for label, rows in planted.items()} == {
        "alert": ["politie", "schuldhulpverlening", "woningcorporatie"],
        "near-miss-two-signals": ["politie", "woningcorporatie"],
        "near-miss-spread": ["politie", "schuldhulpverlening", "woningcorporatie"],
        "youth-alert": ["jeugdzorg", "onderwijs", "politie"],
        "youth-near-miss-spread": ["jeugdzorg", "onderwijs", "politie"],
    }
    for label, rows in planted.items():
        assert len({(r["bsn"], r["name"]) for r in rows}) == 1, label
        assert len({r["address"] for r in rows if r["address"]}) == 1, label
        assert is_valid_bsn(rows[0]["bsn"])
    assert len({rows[0]["bsn"] for rows in planted.values()}) == 5
    assert len({rows[0]["address"] for rows in planted.values()}) == 5


def _payloads(bundled: Bundled) -> dict[str, dict[str, Any]]:
    """The alerts' payloads by the rule that fired."""
    payloads = [codec.decode(REGISTRY, alert.value)[1]["payload"] for alert in bundled.alerts]
    return {payload["rule"]: payload for payload in payloads}


def test_the_samples_raise_exactly_one_alert_about_the_planted_person(bundled: Bundled) -> None:
    assert bundled.signals == 242 + 30  # the agencies' samples + the residents' meldpunt
    assert len(bundled.alerts) == 2
    payload = _payloads(bundled)["multi_agency_90_days"]
    person = _planted()[PLANTED_ALERT][0]
    assert payload["subject_kind"] == "person"
    assert payload["subject_ref"] == Pseudonymiser(KEY).pseudonym(
        CASEWORK_DOMAIN, "bsn", person["bsn"]
    )
    assert payload["rule"] == "multi_agency_90_days"
    assert payload["agencies"] == ["politie", "schuldhulpverlening", "woningcorporatie"]
    assert payload["signal_types"] == ["debt_signal", "nuisance_report"]
    assert payload["signal_count"] == 3
    assert payload["revision"] == 1
    span = payload["last_observed"] - payload["first_observed"]
    assert 60 < span.days < 90


def test_the_samples_raise_one_youth_alert_about_the_planted_young_person(
    bundled: Bundled,
) -> None:
    payload = _payloads(bundled)["youth_care_education_police_90_days"]
    person = _planted()[PLANTED_YOUTH_ALERT][0]
    assert payload["subject_kind"] == "person"
    assert payload["subject_ref"] == Pseudonymiser(KEY).pseudonym(
        CASEWORK_DOMAIN, "bsn", person["bsn"]
    )
    assert payload["agencies"] == ["jeugdzorg", "onderwijs", "politie"]
    assert payload["signal_types"] == ["drug_signal", "school_absence", "youth_protection_concern"]
    assert payload["signal_count"] == 3
    assert payload["revision"] == 1
    span = payload["last_observed"] - payload["first_observed"]
    assert 60 < span.days < 90


@pytest.mark.parametrize("index", [0, 1])
def test_the_alerts_carry_no_content_of_the_sample_data(bundled: Bundled, index: int) -> None:
    text = bundled.alerts[index].value.decode("latin-1")
    bsns = _sample_bsns()
    assert len(bsns) > 50
    assert not [bsn for bsn in bsns if bsn in text]
    for rows in _planted().values():
        assert rows[0]["name"] not in text
        assert rows[0]["address"] not in text
    assert not [street for street in _STREETS if street in text]
    for word in ("Maastricht", "Huurachterstand", "lawaai", "Vroegsignaal", "BU0935", "koerier"):
        assert word not in text


def test_the_near_misses_are_bundled_but_raise_nothing(bundled: Bundled) -> None:
    pseudonymiser = Pseudonymiser(KEY)
    alerted = {alert.bundle_id for alert in bundled.alerts}
    near_misses = (
        ("near-miss-two-signals", 2),
        ("near-miss-spread", 3),
        ("youth-near-miss-spread", 3),
    )
    for label, size in near_misses:
        key = pseudonymiser.pseudonym(BUNDLING_DOMAIN, "bsn", _planted()[label][0]["bsn"])
        contributions = bundled.store.contributions(key)
        assert len(contributions) == size, label  # linked across agencies, as planted
        assert bundle_id(key) not in alerted, label
