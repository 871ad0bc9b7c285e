"""BSN detection as properties: every rendering of every valid BSN inside any free text is found
and scrubbed; no hub id is ever read as one; the whole outgoing record is scanned and a finding
names the field and the rule, never the value."""

from __future__ import annotations

import re
import uuid

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pseudonym_support import drug, registry
from signalhub.enforcer.generalise import find_bsns, has_bsn, is_bsn, scrub_free_text
from signalhub.enforcer.leak_guard import HUB_IDS, SignalIdentifiers, scan_record
from signalhub.enforcer.projection import Projection
from signalhub.types import Record

SEPARATORS = [
    " ",
    "  ",
    "\u00a0",
    "\u2009",
    "\u202f",
    "\u2007",
    ".",
    "-",
    "/",
    "_",
    " - ",
    "\u2013",
]
#: Zero of each digit style: ASCII, full-width, Arabic-Indic, Devanagari, mathematical bold.
ZEROS = ["0", "\uff10", "\u0660", "\u0966", "\U0001d7ce"]
#: The detector of the first release, kept to count what it flagged.
OLD_BSN_IN_TEXT = re.compile(r"(?<![0-9])[0-9](?:[ .\-]?[0-9]){8}(?![0-9])")


@st.composite
def valid_bsns(draw: st.DrawFn) -> str:
    """Nine digits passing the eleven test; about one in ten below 100,000,000."""
    first = draw(st.sampled_from("0123456789"))
    body = [int(first), *draw(st.lists(st.integers(0, 9), min_size=7, max_size=7))]
    check = sum(d * w for d, w in zip(body, range(9, 1, -1), strict=True)) % 11
    digits = "".join(map(str, body)) + str(check)
    if check == 10 or digits.startswith("00") or digits == "000000000":
        return draw(valid_bsns())
    return digits


@st.composite
def renderings(draw: st.DrawFn, bsn: str) -> str:
    """``bsn`` as someone might write it: 8 digits when it starts with 0, any grouping, any
    separators, any digit style (per digit)."""
    digits = bsn[1:] if bsn.startswith("0") and draw(st.booleans()) else bsn
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=4)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    assume(not _a_date(groups))  # eight digits grouped as a date are read as the date
    styled = [
        "".join(chr(ord(draw(st.sampled_from(ZEROS))) + int(d)) for d in group) for group in groups
    ]
    text = styled[0]
    for group in styled[1:]:
        text += draw(st.sampled_from(SEPARATORS)) + group
    return text


@settings(max_examples=1500, deadline=None)
@given(data=st.data(), bsn=valid_bsns(), before=st.text(max_size=30), after=st.text(max_size=30))
def test_every_rendered_bsn_in_free_text_is_found_and_scrubbed(
    data: st.DataObject, bsn: str, before: str, after: str
) -> None:
    written = data.draw(renderings(bsn))
    text = f"{before} {written} {after}"  # a separator apart: not part of a longer digit run
    start = len(before) + 1
    assert any(m.start <= start and start + len(written) <= m.end for m in find_bsns(text))
    scrubbed = scrub_free_text(text, lambda _: "\u2588")
    assert written not in scrubbed
    assert not has_bsn(scrubbed)


def test_a_million_hub_uuids_are_never_blocked() -> None:
    """uuid4 ids in every hub-id field: none blocked. The old detector flagged ~0.67 % of them."""
    old_flagged = 0
    blocked = 0
    for _ in range(1_000_000):
        hub_id = str(uuid.uuid4())
        if any(is_bsn(m.group(0).replace("-", "")) for m in OLD_BSN_IN_TEXT.finditer(hub_id)):
            old_flagged += 1
        if has_bsn(hub_id) or not HUB_IDS["payload.bundle_id"].fullmatch(hub_id):
            blocked += 1
    rate = old_flagged / 1_000_000
    assert blocked == 0, f"{blocked} of 1,000,000 uuid4 ids read as BSNs"
    # Printed with -s; kept in the assertion so a change in the old figure is noticed too.
    print(f"\nold detector: {old_flagged} of 1,000,000 uuid4 ids ({rate:.3%}) read as BSNs")
    assert 0.004 < rate < 0.01, f"old detector flagged {rate:.3%} of uuid4 ids"


def test_hub_ids_in_every_hub_id_field_of_a_whole_record_pass() -> None:
    record, headers, projection, identifiers = _delivery()
    flagged = _flagged_uuids(200)
    for hub_id in flagged:
        record["envelope"]["signal_id"] = hub_id
        record["delivery"]["delivery_id"] = hub_id
        record["envelope"]["source_ref"] = f"bundle {hub_id} revision 2"
        headers = (("signalhub.delivery_id", hub_id.encode()), *headers[1:])
        assert scan_record(record, headers, projection, identifiers) == []


def test_the_whole_record_is_scanned_and_findings_name_path_and_rule_never_value() -> None:
    record, headers, projection, identifiers = _delivery()
    record["envelope"]["source_ref"] = "123 456 782"
    record["payload"]["description"] = "zie 1234.56.782"
    record["delivery"]["purpose"] = "casework for Dewi van der Klein"
    headers = (*headers, ("signalhub.detail", "bsn １２３４５６７８２".encode()))
    leaks = scan_record(record, headers, projection, identifiers)
    assert sorted(leak.describe() for leak in leaks) == [
        "a BSN-valid number in envelope.source_ref",
        "a BSN-valid number in header signalhub.detail",
        "a BSN-valid number in payload.description",
        "the name of subject_name in delivery.purpose",
    ]
    for leak in leaks:
        assert not re.search(r"[0-9]{3}|Dewi", leak.describe())


def test_a_header_is_read_unless_it_repeats_its_field_and_a_finding_names_both() -> None:
    record, headers, projection, identifiers = _delivery()
    version = (("signalhub.policy_version", b"123 456 782"),)
    leaks = scan_record(record, (*headers[:2], *version), projection, identifiers)
    assert [leak.describe() for leak in leaks] == [
        "a BSN-valid number in header signalhub.policy_version"
    ]
    record["envelope"]["signal_type"] = "drug_signal 123 456 782"
    mirrored = (headers[0], ("signalhub.signal_type", b"drug_signal 123 456 782"), headers[2])
    leaks = scan_record(record, mirrored, projection, identifiers)
    assert sorted(leak.describe() for leak in leaks) == [
        "a BSN-valid number in envelope.signal_type",
        "a BSN-valid number in header signalhub.signal_type",
    ]


def test_agency_keys_are_read_as_keys_but_a_bare_number_is_a_bsn() -> None:
    record, headers, projection, identifiers = _delivery()
    for key in ("Z-2024-10000", "WS-2024-5001", "PL2300-2024100037", "VS-2024-700"):
        record["envelope"]["source_ref"] = key
        assert scan_record(record, headers, projection, identifiers) == [], key
    for key in ("123456782", "123-456-782", "12345672", "BSN123456782"):
        record["envelope"]["source_ref"] = key
        leaks = scan_record(record, headers, projection, identifiers)
        assert [leak.describe() for leak in leaks] == [
            "a BSN-valid number in envelope.source_ref"
        ], key


def test_dates_as_written_are_not_eight_digit_bsns() -> None:
    # 20240624 passes as 020240624; grouped as a date it is one, bare it may be a BSN.
    for text in ("2024-06-24", "24-06-2024", "24.06.2024", "2024/06/24"):
        assert find_bsns(f"besluit van {text}") == [], text
    assert [m.bsn for m in find_bsns("nummer 20240624")] == ["020240624"]


def _a_date(groups: list[str]) -> bool:
    lengths = [len(group) for group in groups]
    if lengths == [4, 2, 2]:
        year, month, day = map(int, groups)
    elif lengths == [2, 2, 4]:
        day, month, year = map(int, groups)
    else:
        return False
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31


def _flagged_uuids(count: int) -> list[str]:
    """uuid4 ids the old detector read as BSNs."""
    found: list[str] = []
    while len(found) < count:
        hub_id = str(uuid.uuid4())
        if any(is_bsn(m.group(0).replace("-", "")) for m in OLD_BSN_IN_TEXT.finditer(hub_id)):
            found.append(hub_id)
    return found


def _delivery() -> tuple[Record, tuple[tuple[str, bytes], ...], Projection, SignalIdentifiers]:
    signal = drug(description="Handel vanuit woning.")
    identifiers = SignalIdentifiers.of(registry().signal("drug_signal"), signal["payload"])
    projection = Projection(("description", "severity"), ("subject_bsn",), ())
    the_id = str(uuid.uuid4())
    record: Record = {
        "envelope": dict(signal["envelope"]),
        "delivery": {
            "delivery_id": the_id,
            "subscriber": "politie",
            "purpose": "casework",
            "legal_basis": "Politiewet 2012 art. 3",
            "policy_version": "sha256:0123456782abcdef",
            "pseudonym_domain": "politie",
            "withheld": ["subject_name", "address"],
        },
        "payload": {
            "subject_bsn": "pn1.k1." + "b" * 32,
            "description": "Handel vanuit woning.",
            "severity": 5,
        },
    }
    headers = (
        ("signalhub.delivery_id", the_id.encode()),
        ("signalhub.signal_type", b"drug_signal"),
        ("signalhub.policy_version", b"sha256:0123456782abcdef"),
    )
    return record, headers, projection, identifiers
