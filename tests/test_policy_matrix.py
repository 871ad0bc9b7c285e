"""The who-sees-what matrix tells the truth: generalised fields, the envelope, per source agency.

Before, the matrix listed generalised fields as withheld (216 deliveries of one run carried a
postcode area or an age band), evaluated every case as coming from gemeente, and
docs/policies.md listed the postcode as clear for woningcorporatie's nuisance reports although it
is withheld. What subscribers actually receive is checked against the matrix over a demo run in
tests/test_demo.py (``assert_matrix_predicts``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from policy_support import copy_policies
from signalhub.apps.publishers import publishing_agencies
from signalhub.cli import cli
from signalhub.config import load_settings
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.policy.matrix import ANY_SOURCE, MatrixRow, policy_matrix, render_text
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions

SETTINGS = load_settings(bootstrap_servers="")
TODAY = date(2026, 6, 1)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "policies.md"


def _matrix(policies_dir: Path) -> list[MatrixRow]:
    registry = SchemaRegistry.from_dir(SETTINGS.schemas_dir)
    subscriptions = by_signal_type(
        load_subscriptions(SETTINGS.subscriptions_file, registry.signal_types())
    )
    engine = EmbeddedPolicyEngine.from_dir(policies_dir)
    try:
        return policy_matrix(
            registry,
            subscriptions,
            engine,
            TODAY,
            sources=publishing_agencies(SETTINGS.connectors_dir),
        )
    finally:
        engine.close()


@pytest.fixture(scope="module")
def shipped() -> list[MatrixRow]:
    return _matrix(SETTINGS.policies_dir)


def _cells(rows: list[MatrixRow]) -> dict[tuple[str, str, str, str], MatrixRow]:
    return {(r.subscription, r.signal_type, r.source_agency, r.field): r for r in rows}


def test_generalised_fields_show_as_generalised_with_their_method(
    shipped: list[MatrixRow],
) -> None:
    cells = _cells(shipped)
    landlord = ("woningcorporatie-overlast", "nuisance_report", ANY_SOURCE)
    assert cells[(*landlord, "address")].treatment == "generalised"
    assert cells[(*landlord, "address")].how == "postcode_area"
    assert cells[(*landlord, "postcode")].treatment == "withheld"
    mayor = ("gemeente-openbare-orde", "nuisance_report", ANY_SOURCE)
    assert (cells[(*mayor, "postcode")].treatment, cells[(*mayor, "postcode")].how) == (
        "generalised",
        "postcode_area",
    )
    ages = [r for r in shipped if r.field == "subject_birth_date" and r.treatment != "withheld"]
    assert ages
    assert {(r.treatment, r.how) for r in ages} == {("generalised", "age_band")}
    text = render_text(shipped)
    assert "generalised:   postcode (postcode_area)" in text


def test_the_envelope_is_in_the_matrix_as_the_enforcer_decides_it(
    shipped: list[MatrixRow],
) -> None:
    allowed = [r for r in shipped if r.allowed_cases]
    envelope = {(r.field, r.treatment, r.how) for r in allowed if r.field.startswith("envelope.")}
    assert envelope == {
        ("envelope.signal_id", "pseudonymised", "signal id of the domain"),
        ("envelope.source_ref", "pseudonymised", "keyed reference of the domain"),
        ("envelope.observed_at", "generalised", "day"),
        ("envelope.registered_at", "generalised", "day"),
        ("envelope.signal_type", "clear", ""),
        ("envelope.source_agency", "clear", ""),
        ("envelope.schema_version", "clear", ""),
    }


def test_an_agreement_that_grants_envelope_fields_shows_them(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path / "policies")
    _edit_agreement(
        policies,
        "nuisance_report/politie/public_order_enforcement",
        fields=["envelope.source_ref"],
        generalise={"envelope.observed_at": "hour"},
    )
    cells = _cells(_matrix(policies))
    police = ("politie-handhaving", "nuisance_report", ANY_SOURCE)
    assert cells[(*police, "envelope.source_ref")].treatment == "clear"
    assert (cells[(*police, "envelope.observed_at")].how) == "hour"
    assert cells[(*police, "envelope.registered_at")].how == "day"


def test_a_rule_on_the_source_agency_shows_per_source(tmp_path: Path) -> None:
    publishers = publishing_agencies(SETTINGS.connectors_dir)["nuisance_report"]
    assert "politie" in publishers
    assert len(publishers) >= 2
    policies = copy_policies(tmp_path / "policies")
    _edit_agreement(
        policies, "nuisance_report/gemeente/public_order", conditions={"sources": ["politie"]}
    )

    rows = _matrix(policies)

    mayor = [r for r in rows if r.subscription == "gemeente-openbare-orde"]
    nuisance = [r for r in mayor if r.signal_type == "nuisance_report"]
    assert {r.source_agency for r in nuisance} == set(publishers)
    by_source = {r.source_agency: r for r in nuisance if r.field == "postcode"}
    assert by_source["politie"].treatment == "generalised"
    assert by_source["politie"].allowed_cases == by_source["politie"].cases
    for source, row in by_source.items():
        if source != "politie":
            assert (row.treatment, row.allowed_cases) == ("withheld", 0)
            assert "is not one of the agreed sources" in row.when_denied
    # A subscription the rule does not touch keeps one row per field for every source.
    assert {r.source_agency for r in mayor if r.signal_type != "nuisance_report"} == {ANY_SOURCE}
    assert ", from politie, always)" in render_text(rows)


def test_matrix_as_json_through_the_cli(tmp_path: Path) -> None:
    env = {"SIGNALHUB_STATE_DIR": str(tmp_path / "state"), "SIGNALHUB_BOOTSTRAP_SERVERS": ""}
    args = ["policy", "matrix", "--format", "json", "--dir", "policies", "--today", "2026-06-01"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["policy_version"].startswith("sha256:")
    row = next(
        r
        for r in body["rows"]
        if (r["subscription"], r["signal_type"], r["field"])
        == ("woningcorporatie-overlast", "nuisance_report", "address")
    )
    assert (row["treatment"], row["how"], row["source_agency"]) == (
        "generalised",
        "postcode_area",
        ANY_SOURCE,
    )


def test_docs_table_of_the_shipped_agreements_matches_the_matrix(
    shipped: list[MatrixRow],
) -> None:
    subscriptions = {s.id: s for s in load_subscriptions(SETTINGS.subscriptions_file)}
    expected: dict[tuple[str, str, str], tuple[str, str, str, str]] = {}
    for row in shipped:
        if not row.allowed_cases or row.field.startswith("envelope."):
            continue
        purpose = subscriptions[row.subscription].purpose
        key = (row.signal_type, row.subscriber, purpose)
        clear, general, pseudo, _ = expected.get(key, ("", "", "", ""))
        named = f"{row.field} ({row.how})" if row.how else row.field
        clear += f"{row.field}," if row.treatment == "clear" else ""
        general += f"{named}," if row.treatment == "generalised" else ""
        pseudo += f"{row.field}," if row.treatment == "pseudonymised" else ""
        expected[key] = (clear, general, pseudo, row.domain)
    documented = dict(_docs_table())
    assert set(documented) == set(expected)
    for key, (clear, general, pseudo, domain) in expected.items():
        assert documented[key] == (_sorted(clear), _sorted(general), _sorted(pseudo), domain), key


def _sorted(names: str) -> str:
    return ", ".join(sorted(n for n in names.split(",") if n)) or "—"


def _docs_table() -> Iterator[tuple[tuple[str, str, str], tuple[str, str, str, str]]]:
    lines = DOCS.read_text("utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Signal type |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    assert header == [
        "Signal type",
        "Subscriber / purpose",
        "Legal basis",
        "Clear",
        "Generalised",
        "Pseudonymised",
        "Conditions",
        "Domain",
    ]
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            return
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        subscriber, purpose = re.split(r"\s*/\s*", cells[1])
        yield (cells[0], subscriber, purpose), (cells[3], cells[4], cells[5], cells[7])


def _edit_agreement(policies: Path, key: str, **changes: object) -> None:
    path = policies / "data" / "agreements.json"
    agreements = json.loads(path.read_text("utf-8"))
    agreement = agreements[key]
    for name, value in changes.items():
        if name == "fields" and isinstance(value, list):
            agreement["fields"] = sorted([*agreement["fields"], *value])
        elif isinstance(value, dict):
            agreement[name] = {**agreement.get(name, {}), **value}
        else:
            agreement[name] = value
    path.write_text(json.dumps(agreements, indent=1), "utf-8")
