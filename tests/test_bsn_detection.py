"""The defects an independent review found in BSN detection, through the enforcer's interfaces
(the scrubber, the leak guard's ``scan_record``, the core): renderings of a BSN that passed in
clear, and the hub's own UUIDs blocked as BSNs."""

from __future__ import annotations

import json

import pytest

from pseudonym_support import KEY, NOW, drug, enforcement, registry, signal, source_record
from signalhub.enforcer.generalise import scrub_free_text
from signalhub.enforcer.leak_guard import SignalIdentifiers, scan_record
from signalhub.enforcer.projection import Projection
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.wire import BLOCKED_TOPIC

#: Renderings a subscriber received in clear; every one is the BSN 123456782 (or 012345672).
RENDERINGS = {
    "slashes": ("123/456/782", "123456782"),
    "two spaces": ("123  456  782", "123456782"),
    "no-break spaces": ("123\u00a0456\u00a0782", "123456782"),
    "thin and narrow no-break spaces": ("123\u2009456\u202f782", "123456782"),
    "underscores": ("123_456_782", "123456782"),
    "full-width digits": ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff12", "123456782"),
    "eight digits": ("12345672", "012345672"),
    "eight digits grouped": ("12.345.672", "012345672"),
    "arabic-indic digits": ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0662", "123456782"),
    "en dashes": ("123\u2013456\u2013782", "123456782"),
}
BSNS = ("123456782", "012345672")
#: A UUID whose digits "903545-391" pass the eleven test, as the old detector read them.
BUNDLE_ID = "9c903545-391d-4f7e-a2b1-7c5e0d8f6a3b"


@pytest.mark.parametrize(("written", "bsn"), RENDERINGS.values(), ids=list(RENDERINGS))
def test_every_rendering_of_a_bsn_is_scrubbed_from_free_text(written: str, bsn: str) -> None:
    scrubbed = scrub_free_text(f"Melding over {written}, zie dossier.", lambda d: f"<bsn {d}>")
    assert scrubbed == f"Melding over <bsn {bsn}>, zie dossier."


@pytest.mark.parametrize(("written", "bsn"), RENDERINGS.values(), ids=list(RENDERINGS))
def test_every_rendering_of_a_bsn_is_found_by_the_leak_guard(written: str, bsn: str) -> None:
    record = drug()
    identifiers = SignalIdentifiers.of(registry().signal("drug_signal"), record["payload"])
    view = {"activity": f"zie {written} ", "severity": 5}
    projection = Projection(("activity", "severity"), (), ())
    leaks = scan_record({"payload": view}, (), projection, identifiers)
    assert [leak.describe() for leak in leaks] == ["a BSN-valid number in payload.activity"]


def test_clear_free_text_reaches_the_police_without_the_bsn_however_written() -> None:
    record = drug(description="Klant 123/456/782 en 12345672 gezien; 123\u00a0456\u00a0782.")
    outputs = enforcement().process(source_record(record))
    assert not [o for o in outputs if o.topic == BLOCKED_TOPIC]
    politie = next(o for o in outputs if o.topic == "deliveries.politie")
    description = codec.decode(registry(), politie.value)[1]["payload"]["description"]
    nine, eight = (Pseudonymiser(KEY).pseudonym("politie", "bsn", b) for b in BSNS)
    assert (description.count(nine), description.count(eight)) == (2, 1)
    assert not any(ch.isdigit() for ch in description.replace(nine, "").replace(eight, ""))


def test_the_hubs_own_uuid_is_not_read_as_a_bsn() -> None:
    alert = _alert(BUNDLE_ID)
    schema = registry().signal("casework_alert")
    identifiers = SignalIdentifiers.of(schema, alert["payload"])
    projection = Projection(("bundle_id", "revision", "rule"), (), ())
    view = {name: alert["payload"][name] for name in projection.clear}
    assert scan_record({"payload": view}, (), projection, identifiers) == []


def test_a_casework_alert_with_such_a_bundle_id_is_delivered() -> None:
    outputs = enforcement().process(source_record(_alert(BUNDLE_ID)))
    assert [json.loads(o.value)["reasons"] for o in outputs if o.topic == BLOCKED_TOPIC] == []
    delivered = [o for o in outputs if o.topic.startswith("deliveries.")]
    assert delivered
    for output in delivered:
        view = codec.decode(registry(), output.value)[1]
        domain = view["delivery"]["pseudonym_domain"]
        expected = Pseudonymiser(KEY).domain_id(domain, "bundle_id", BUNDLE_ID)
        assert view["payload"]["bundle_id"] == expected  # the bundle's id in the domain


def test_a_hub_id_field_holding_something_else_is_still_scanned() -> None:
    alert = _alert("bundle 123 456 782")
    schema = registry().signal("casework_alert")
    identifiers = SignalIdentifiers.of(schema, alert["payload"])
    projection = Projection(("bundle_id",), (), ())
    view = {"bundle_id": "bundle 123 456 782"}
    leaks = scan_record({"payload": view}, (), projection, identifiers)
    assert [leak.describe() for leak in leaks] == ["a BSN-valid number in payload.bundle_id"]


def _alert(bundle_id: str) -> dict[str, object]:
    record = signal(
        "casework_alert",
        "signalhub",
        subject_ref="pn1.k1." + "a" * 32,
        subject_kind="person",
        bundle_id=bundle_id,
        revision=1,
        rule="multi_agency_person",
        reasons=["three agencies within 90 days"],
        agencies=["gemeente", "politie", "woningcorporatie"],
        signal_types=["drug_signal", "nuisance_report"],
        signal_count=3,
        first_observed=NOW,
        last_observed=NOW,
    )
    record["envelope"]["source_ref"] = f"bundle {bundle_id} revision 1"
    return record
