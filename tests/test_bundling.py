"""The bundler's core with the shipped policy on the embedded engine and a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bundling_support import about, source_record
from hub_support import new_person
from signalhub.bundling import (
    CASEWORK_DOMAIN,
    Bundler,
    BundleStore,
    BundlingPolicy,
    address_key,
    ask,
    cells,
    read_log,
    render_count,
    to_csv,
    to_html,
    verify_log,
)
from signalhub.config import load_settings
from signalhub.errors import PolicyError
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.wire import alert_signal_id

KEY = bytes(range(32))
SETTINGS = load_settings()
REGISTRY = SchemaRegistry.from_dir(SETTINGS.schemas_dir)


@pytest.fixture(scope="module")
def engine() -> Iterator[EmbeddedPolicyEngine]:
    loaded = EmbeddedPolicyEngine.from_dir(SETTINGS.policies_dir)
    yield loaded
    loaded.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BundleStore]:
    with BundleStore(tmp_path / "bundling.sqlite") as opened:
        yield opened


def _bundler(store: BundleStore, engine: EmbeddedPolicyEngine) -> Bundler:
    return Bundler(REGISTRY, store, BundlingPolicy(engine), Pseudonymiser(KEY))


def _alert(value: bytes) -> dict[str, object]:
    _, record = codec.decode(REGISTRY, value)
    return record


def test_three_agencies_within_90_days_fire_one_alert_without_content(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    person = new_person()
    signals = [
        about(REGISTRY, person, "politie", 0),
        about(REGISTRY, person, "woningcorporatie", 40),
        about(REGISTRY, person, "schuldhulpverlening", 80),
    ]
    bundler = _bundler(store, engine)
    assert bundler.process([source_record(REGISTRY, s) for s in signals[:2]]) == []
    alerts = bundler.process([source_record(REGISTRY, signals[2])])
    assert len(alerts) == 1  # the person's bundle; the address bundle is the same person's
    record = _alert(alerts[0].value)
    payload = record["payload"]
    assert isinstance(payload, dict)
    assert payload["agencies"] == ["politie", "schuldhulpverlening", "woningcorporatie"]
    assert payload["signal_types"] == ["debt_signal", "nuisance_report"]
    assert payload["signal_count"] == 3
    assert payload["rule"] == "multi_agency_90_days"
    assert payload["revision"] == 1
    assert payload["subject_ref"] == Pseudonymiser(KEY).pseudonym(
        CASEWORK_DOMAIN, "bsn", person.bsn
    )
    text = alerts[0].value.decode("latin-1")
    for secret in (person.bsn, person.name, person.address, "Vertrouwelijke"):
        assert secret not in text


def test_no_clear_identifier_is_stored(store: BundleStore, engine: EmbeddedPolicyEngine) -> None:
    person = new_person()
    bundler = _bundler(store, engine)
    for day, agency in enumerate(("politie", "woningcorporatie", "schuldhulpverlening")):
        bundler.process([source_record(REGISTRY, about(REGISTRY, person, agency, day))])
    store.close()  # checkpoints the WAL into the file
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob("bundling.sqlite*"))
    assert len(raw) > 4096
    for secret in (person.bsn, person.name, person.address, person.postcode):
        assert secret.encode() not in raw


def test_spread_over_more_than_90_days_or_one_agency_fires_nothing(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    spread, single = new_person(), new_person()
    records = [
        about(REGISTRY, spread, "politie", 0),
        about(REGISTRY, spread, "woningcorporatie", 50),
        about(REGISTRY, spread, "schuldhulpverlening", 141),
        about(REGISTRY, single, "politie", 0),
        about(REGISTRY, single, "politie", 1),
        about(REGISTRY, single, "politie", 2),
    ]
    bundler = _bundler(store, engine)
    assert bundler.process([source_record(REGISTRY, s) for s in records]) == []
    assert store.alert_count() == 0


def test_more_signals_update_the_alert_and_duplicates_change_nothing(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    person = new_person()
    first = [about(REGISTRY, person, a, d) for a, d in (("politie", 0), ("woningcorporatie", 1))]
    third = about(REGISTRY, person, "schuldhulpverlening", 2)
    bundler = _bundler(store, engine)
    bundler.process([source_record(REGISTRY, s) for s in [*first, third]])
    store.mark_sent(store.unsent_alerts())
    # The same records again (a re-read after a crash): no new alert.
    assert bundler.process([source_record(REGISTRY, s) for s in [*first, third]]) == []
    fourth = about(REGISTRY, person, "politie", 3)
    (update,) = bundler.process([source_record(REGISTRY, fourth)])
    payload = _alert(update.value)["payload"]
    assert isinstance(payload, dict)
    assert (payload["revision"], payload["signal_count"]) == (2, 4)
    assert update.signal_id == alert_signal_id(update.bundle_id, 2)
    assert _alert(update.value)["envelope"]["signal_id"] == update.signal_id  # type: ignore[index]


def test_radicalisation_with_any_other_signal_fires(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    person = new_person()
    records = [about(REGISTRY, person, "gemeente", 0), about(REGISTRY, person, "politie", 200)]
    (alert,) = _bundler(store, engine).process([source_record(REGISTRY, s) for s in records])
    payload = _alert(alert.value)["payload"]
    assert isinstance(payload, dict)
    assert payload["rule"] == "radicalisation_plus_other"


def test_an_address_with_several_people_fires_its_own_bundle(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    people = [new_person() for _ in range(3)]
    shared = {"address": people[0].address, "postcode": people[0].postcode}
    records = []
    for person, agency in zip(
        people, ("politie", "woningcorporatie", "schuldhulpverlening"), strict=True
    ):
        signal = about(REGISTRY, person, agency, 5)
        signal["payload"].update(shared)
        records.append(signal)
    (alert,) = _bundler(store, engine).process([source_record(REGISTRY, s) for s in records])
    payload = _alert(alert.value)["payload"]
    assert isinstance(payload, dict)
    assert payload["subject_kind"] == "address"


@pytest.mark.parametrize(
    ("postcode", "address", "expected"),
    [
        ("6211 AB", "Boschstraat 12a, Maastricht", "6211ab 12a"),
        ("6211ab", "Boschstraat 12 A Maastricht", "6211ab 12a"),
        ("6211 AB", "Boschstraat, Maastricht", None),
        (None, "Boschstraat 1", None),
    ],
    ids=["with-letter", "spaced-letter", "no-number", "no-postcode"],
)
def test_address_key_is_postcode_and_house_number(
    postcode: str | None, address: str, expected: str | None
) -> None:
    assert address_key(postcode, address) == expected


def test_hit_no_hit_answers_and_refuses_by_policy_and_logs_all(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    known, unknown = new_person(), new_person()
    pseudonymiser = Pseudonymiser(KEY)
    _bundler(store, engine).process(
        [
            source_record(REGISTRY, about(REGISTRY, known, "politie", 0)),
            source_record(REGISTRY, about(REGISTRY, known, "schuldhulpverlening", 1)),
        ]
    )
    policy = BundlingPolicy(engine)
    hit = ask(store, policy, pseudonymiser, "zvh", known.bsn)
    miss = ask(store, policy, pseudonymiser, "politie", unknown.bsn)
    refused = ask(store, policy, pseudonymiser, "woningcorporatie", known.bsn)
    assert (hit.allowed, hit.known, hit.partners) == (
        True,
        True,
        ("politie", "schuldhulpverlening"),
    )
    assert (miss.allowed, miss.known, miss.partners) == (True, False, ())
    assert (refused.allowed, refused.known, refused.partners) == (False, None, ())
    log = read_log(store)
    assert [(e.asker, e.allowed, e.known) for e in log] == [
        ("zvh", True, True),
        ("politie", True, False),
        ("woningcorporatie", False, None),
    ]
    assert all(known.bsn not in e.subject_ref for e in log)
    assert verify_log(store) == []
    with pytest.raises(Exception, match="append-only"):
        store.execute("UPDATE hit_no_hit_log SET allowed = 1 WHERE seq = 3")


def test_a_policy_without_the_bundling_package_fails_closed(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    (policies / "data").mkdir(parents=True)
    (policies / "p.rego").write_text(
        "package signalhub.sharing\nimport rego.v1\ndefault decisions := {}\n"
    )
    engine = EmbeddedPolicyEngine.from_dir(policies)
    try:
        with pytest.raises(PolicyError):
            BundlingPolicy(engine).may_ask("politie")
    finally:
        engine.close()


def test_wijkbeeld_suppresses_small_cells_and_keeps_true_totals(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    records = [about(REGISTRY, new_person(), "politie", 0, neighbourhood="BU1") for _ in range(6)]
    records += [about(REGISTRY, new_person(), "politie", 0, neighbourhood="BU2") for _ in range(2)]
    records += [about(REGISTRY, None, "politie", 0, neighbourhood=None)]
    _bundler(store, engine).process([source_record(REGISTRY, s) for s in records])
    found = cells(store)
    assert sum(cell.count for cell in found) == len(records)
    assert {(c.neighbourhood, c.count) for c in found} == {("BU1", 6), ("BU2", 2), ("onbekend", 1)}
    csv_text = to_csv(found, 5)
    assert "BU1,nuisance_report,2026-W10,6" in csv_text
    assert "BU2,nuisance_report,2026-W10,<5" in csv_text
    assert ",2\n" not in csv_text
    assert ",1\n" not in csv_text
    page = to_html(found, 5)
    assert "&lt;5" in page
    assert "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert render_count(4, 5) == "<5"
    assert render_count(5, 5) == "5"


# Written by the hit/no-hit log before it was kept on the ledger; the hashes are that code's.
_OLD_HIT_NO_HIT_LOG = [
    (1, "2024-03-01T09:00:00.000+00:00", "zvh", "ref-a", 1, 1,
     '["politie", "schuldhulpverlening"]', '["afspraak casu\\u00efstiek"]',
     "sha256:0123456789abcdef", "0" * 64,
     "3f394b8f76d100e7df31bc7976a51726003115896352e1c628dd6339dacc88fc"),
    (2, "2024-03-01T09:01:00.000+00:00", "politie", "ref-b", 1, 0, "[]",
     '["afspraak casu\\u00efstiek"]', "sha256:0123456789abcdef",
     "3f394b8f76d100e7df31bc7976a51726003115896352e1c628dd6339dacc88fc",
     "37b60d02f6b3509f67dfa3e6f7b2ece9cd8d3710f5d996e89d9664645b10f5fe"),
    (3, "2024-03-01T09:02:00.000+00:00", "woningcorporatie", "ref-a", 0, None, "[]",
     '["geen afspraak voor \\u201ccasework\\u201d"]', "sha256:0123456789abcdef",
     "37b60d02f6b3509f67dfa3e6f7b2ece9cd8d3710f5d996e89d9664645b10f5fe",
     "be4dae4682144c3fb9d5f99c1fe464384bde8f776757fb248e0be5660891a961"),
]  # fmt: skip


def test_a_hit_no_hit_log_written_before_the_ledger_still_verifies(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    for row in _OLD_HIT_NO_HIT_LOG:
        store.execute("INSERT INTO hit_no_hit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    assert verify_log(store) == []
    assert read_log(store)[2].reasons == ("geen afspraak voor “casework”",)
    ask(store, BundlingPolicy(engine), Pseudonymiser(KEY), "zvh", new_person().bsn)
    assert [entry.seq for entry in read_log(store)] == [1, 2, 3, 4]
    assert verify_log(store) == []
    store.execute(
        "INSERT INTO hit_no_hit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (5, *_OLD_HIT_NO_HIT_LOG[0][1:9], "f" * 64, "e" * 64),
    )
    problems = verify_log(store)
    assert [problem.split(":")[:2] for problem in problems] == [
        ["hit/no-hit log", " changed"],
        ["hit/no-hit log", " removed"],
    ]
    assert "entry 5 does not match its hash" in problems[0]


def test_youth_care_education_and_police_within_90_days_fire_the_youth_rule(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    """Issue 19's pattern: one young person in youth care, school absence and police signals.

    Three signals from three agencies would also meet multi_agency_90_days; the youth rule
    names the pattern because it has the lower priority number.
    """
    young = new_person(birth_year=2010)
    signals = [
        about(REGISTRY, young, "jeugdzorg", 0),
        about(REGISTRY, young, "onderwijs", 30),
        about(REGISTRY, young, "politie", 85, signal_type="drug_signal"),
    ]
    bundler = _bundler(store, engine)
    assert bundler.process([source_record(REGISTRY, s) for s in signals[:2]]) == []
    (alert,) = bundler.process([source_record(REGISTRY, signals[2])])
    payload = _alert(alert.value)["payload"]
    assert isinstance(payload, dict)
    assert payload["rule"] == "youth_care_education_police_90_days"
    assert payload["agencies"] == ["jeugdzorg", "onderwijs", "politie"]
    assert payload["signal_types"] == ["drug_signal", "school_absence", "youth_protection_concern"]
    assert payload["subject_ref"] == Pseudonymiser(KEY).pseudonym(CASEWORK_DOMAIN, "bsn", young.bsn)
    text = alert.value.decode("latin-1")
    for secret in (young.bsn, young.name, young.address, "Sint-Maartenscollege", "Vertrouwelijke"):
        assert secret not in text


@pytest.mark.parametrize(
    "reports",
    [
        pytest.param(
            [("jeugdzorg", 0, None), ("onderwijs", 40, None), ("politie", 131, "drug_signal")],
            id="police-signal-after-the-window",
        ),
        pytest.param(
            [("jeugdzorg", 0, None), ("onderwijs", 40, None)],
            id="no-police-signal",
        ),
    ],
)
def test_a_near_miss_of_the_youth_pattern_fires_nothing(
    store: BundleStore,
    engine: EmbeddedPolicyEngine,
    reports: list[tuple[str, int, str | None]],
) -> None:
    young = new_person(birth_year=2010)
    signals = [
        about(REGISTRY, young, agency, day, signal_type=kind) for agency, day, kind in reports
    ]
    bundler = _bundler(store, engine)
    assert bundler.process([source_record(REGISTRY, s) for s in signals]) == []
    assert store.alert_count() == 0


def test_without_a_school_absence_the_general_rule_fires_not_the_youth_rule(
    store: BundleStore, engine: EmbeddedPolicyEngine
) -> None:
    young = new_person(birth_year=2010)
    reports = [("jeugdzorg", 0, None), ("gemeente", 20, "nuisance_report")]
    reports += [("politie", 60, "drug_signal")]
    signals = [
        about(REGISTRY, young, agency, day, signal_type=kind) for agency, day, kind in reports
    ]
    (alert,) = _bundler(store, engine).process([source_record(REGISTRY, s) for s in signals])
    payload = _alert(alert.value)["payload"]
    assert isinstance(payload, dict)
    assert payload["rule"] == "multi_agency_90_days"
