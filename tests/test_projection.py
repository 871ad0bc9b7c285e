"""Projection: which payload fields a decision discloses, and how they reach the subscriber."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date

import pytest

from signalhub.config import load_settings
from signalhub.enforcer.projection import Projection, plan_projection, project_payload
from signalhub.policy.decision import Decision
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema.registry import SchemaRegistry, SignalSchema
from signalhub.wire import bundle_id

PSEUDONYMISER = Pseudonymiser(b"p" * 32)
TODAY = date(2026, 3, 2)


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.from_dir(load_settings().schemas_dir)


@pytest.fixture(scope="module")
def nuisance(registry: SchemaRegistry) -> SignalSchema:
    return registry.signal("nuisance_report")


def _decision(
    fields: tuple[str, ...] = (),
    pseudonymise: tuple[str, ...] = (),
    generalise: Mapping[str, str] | None = None,
) -> Decision:
    return Decision(
        allow=True,
        fields=fields,
        pseudonymise=pseudonymise,
        reasons=(),
        policy_version="sha256:test",
        domain="gemeente",
        legal_basis="test",
        generalise=dict(generalise or {}),
    )


def _payload() -> dict[str, object]:
    return {
        "subject_bsn": "111222333",
        "subject_name": "Piet de Vries",
        "address": "Markt 1, Maastricht",
        "postcode": "6211 CK",
        "category": "noise",
        "severity": 4,
        "reporter_type": "resident",
        "neighbourhood_code": "BU09350101",
        "description": "Piet de Vries (BSN 111222333) maakt lawaai.",
    }


def test_every_field_is_exactly_one_of_clear_pseudonymised_or_withheld(
    nuisance: SignalSchema,
) -> None:
    projection = plan_projection(
        nuisance, _decision(fields=("severity", "category"), pseudonymise=("subject_bsn",))
    )

    names = [spec.name for spec in nuisance.payload_fields]
    assert projection.clear == ("category", "severity")
    assert projection.pseudonymised == ("subject_bsn",)
    assert projection.withheld == tuple(
        n for n in names if n not in {"category", "severity", "subject_bsn"}
    )
    together = projection.clear + projection.pseudonymised + projection.withheld
    assert sorted(together) == sorted(names)


def test_the_schema_order_is_kept_whatever_the_decision_order(nuisance: SignalSchema) -> None:
    one = plan_projection(nuisance, _decision(fields=("severity", "category", "postcode")))
    other = plan_projection(nuisance, _decision(fields=("postcode", "category", "severity")))
    assert one == other


def test_a_field_both_clear_and_pseudonymised_is_pseudonymised(nuisance: SignalSchema) -> None:
    projection = plan_projection(
        nuisance, _decision(fields=("subject_name", "severity"), pseudonymise=("subject_name",))
    )
    assert projection.pseudonymised == ("subject_name",)
    assert "subject_name" not in projection.clear


def test_field_names_the_schema_does_not_have_are_ignored(nuisance: SignalSchema) -> None:
    projection = plan_projection(
        nuisance, _decision(fields=("severity", "salary"), pseudonymise=("shoe_size",))
    )
    assert projection.clear == ("severity",)
    assert projection.pseudonymised == ()
    assert "salary" not in projection.withheld


def test_a_deny_like_empty_decision_withholds_everything(nuisance: SignalSchema) -> None:
    projection = plan_projection(nuisance, _decision())
    assert projection.clear == projection.pseudonymised == ()
    assert len(projection.withheld) == len(nuisance.payload_fields)


def test_a_generalisation_that_does_not_fit_the_field_withholds_it(
    nuisance: SignalSchema,
) -> None:
    projection = plan_projection(
        nuisance,
        _decision(
            fields=("address", "subject_name"),
            generalise={"address": "postcode_area", "subject_name": "age_band"},
        ),
    )
    assert projection.generalised == (("address", "postcode_area"),)
    assert "address" not in projection.clear
    assert "subject_name" in projection.withheld


def test_pseudonymisation_wins_over_generalisation(nuisance: SignalSchema) -> None:
    projection = plan_projection(
        nuisance,
        _decision(pseudonymise=("postcode",), generalise={"postcode": "postcode_area"}),
    )
    assert projection.pseudonymised == ("postcode",)
    assert projection.generalised == ()


def test_projected_payload_has_clear_values_and_domain_pseudonyms(
    nuisance: SignalSchema,
) -> None:
    projection = Projection(
        clear=("category", "severity"),
        pseudonymised=("subject_bsn", "subject_name"),
        withheld=(),
    )
    payload = _payload()

    view = project_payload(nuisance, projection, payload, PSEUDONYMISER, "gemeente", today=TODAY)

    assert set(view) == {"category", "severity", "subject_bsn", "subject_name"}
    assert (view["category"], view["severity"]) == ("noise", 4)
    assert view["subject_bsn"] == PSEUDONYMISER.pseudonym("gemeente", "bsn", "111222333")
    assert view["subject_name"] == PSEUDONYMISER.pseudonym("gemeente", "name", "Piet de Vries")
    assert view["subject_bsn"] != view["subject_name"]


def test_the_same_subject_gets_unlinkable_pseudonyms_in_two_domains(
    nuisance: SignalSchema,
) -> None:
    projection = Projection(clear=(), pseudonymised=("subject_bsn",), withheld=())
    ours = project_payload(nuisance, projection, _payload(), PSEUDONYMISER, "gemeente")
    theirs = project_payload(nuisance, projection, _payload(), PSEUDONYMISER, "politie")
    assert ours["subject_bsn"] != theirs["subject_bsn"]
    assert str(ours["subject_bsn"]).startswith("pn1.k1.")


def test_a_bundle_id_reaches_each_domain_as_its_own_id_for_every_revision(
    registry: SchemaRegistry,
) -> None:
    alert = registry.signal("casework_alert")
    hub_bundle = bundle_id("pn1.k1." + "b" * 32)
    projection = plan_projection(alert, _decision(("bundle_id", "revision")))

    def delivered(domain: str, revision: int) -> str:
        payload = {"bundle_id": hub_bundle, "revision": revision}
        view = project_payload(alert, projection, payload, PSEUDONYMISER, domain, today=TODAY)
        assert view["revision"] == revision
        return str(view["bundle_id"])

    casework = delivered("zvh-casework", 1)
    assert delivered("zvh-casework", 2) == casework, "one bundle is followed across revisions"
    assert delivered("gemeente", 1) not in (casework, hub_bundle), "no domain shares the id"
    assert casework != hub_bundle
    assert casework == PSEUDONYMISER.domain_id("zvh-casework", "bundle_id", hub_bundle)
    assert str(uuid.UUID(casework)) == casework, "UUID-shaped, like the hub's own id"


def test_a_missing_value_stays_missing_rather_than_becoming_a_pseudonym(
    nuisance: SignalSchema,
) -> None:
    projection = Projection(clear=(), pseudonymised=("subject_bsn",), withheld=())
    payload = {**_payload(), "subject_bsn": None}
    assert project_payload(nuisance, projection, payload, PSEUDONYMISER, "gemeente") == {
        "subject_bsn": None
    }


def test_a_date_is_pseudonymised_by_its_iso_text(registry: SchemaRegistry) -> None:
    drug = registry.signal("drug_signal")
    projection = Projection(clear=(), pseudonymised=("subject_birth_date",), withheld=())
    payload = {"subject_birth_date": date(1990, 1, 31)}
    view = project_payload(drug, projection, payload, PSEUDONYMISER, "om")
    assert view["subject_birth_date"] == PSEUDONYMISER.pseudonym("om", "birth_date", "1990-01-31")


def test_clear_free_text_never_carries_a_bsn_or_a_withheld_name(nuisance: SignalSchema) -> None:
    projection = plan_projection(
        nuisance, _decision(fields=("description", "severity"), pseudonymise=("subject_bsn",))
    )

    view = project_payload(nuisance, projection, _payload(), PSEUDONYMISER, "politie")

    text = str(view["description"])
    assert "111222333" not in text
    assert "Piet de Vries" not in text
    assert text.endswith("maakt lawaai.")
