"""Properties of pseudonyms that the privacy officer relies on, checked with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from signalhub.pseudonym.keys import KeyRing, rotation_mapping
from signalhub.pseudonym.pseudonyms import Pseudonymiser, normalise, pseudonym_key_version

KEYS = st.binary(min_size=32, max_size=64)
DOMAINS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,30}", fullmatch=True)
KINDS = st.sampled_from(["bsn", "name", "address", "postcode", "phone"])
VALUES = st.text(min_size=1, max_size=80).filter(lambda v: normalise("name", v) != "")
BSNS = st.integers(0, 999_999_999).map(lambda n: f"{n:09d}")


@given(key=KEYS, domain=DOMAINS, kind=KINDS, value=VALUES)
def test_deterministic_within_a_domain(key: bytes, domain: str, kind: str, value: str) -> None:
    assert Pseudonymiser(key).pseudonym(domain, kind, value) == Pseudonymiser(key).pseudonym(
        domain, kind, value
    )


@given(key=KEYS, a=DOMAINS, b=DOMAINS, kind=KINDS, value=VALUES)
def test_different_across_domains(key: bytes, a: str, b: str, kind: str, value: str) -> None:
    p = Pseudonymiser(key)
    assert (p.pseudonym(a, kind, value) == p.pseudonym(b, kind, value)) == (a == b)


@given(key=KEYS, domain=DOMAINS, kind=KINDS, value=VALUES)
def test_no_pseudonym_equals_or_contains_its_input(
    key: bytes, domain: str, kind: str, value: str
) -> None:
    pseudonym = Pseudonymiser(key).pseudonym(domain, kind, value)
    assert pseudonym != value
    body = pseudonym.rsplit(".", 1)[1]
    for form in {value.strip(), normalise(kind, value)}:
        if len(form) >= 4:  # shorter strings occur in any 32-character body by chance
            assert form not in pseudonym
    assert not any(ch.isdigit() and ch in "0189" for ch in body)  # base32: no 0, 1, 8, 9


@given(key=KEYS, version=st.integers(1, 10**6), domain=DOMAINS, value=BSNS)
def test_key_version_round_trips(key: bytes, version: int, domain: str, value: str) -> None:
    assert (
        pseudonym_key_version(Pseudonymiser(key, version).pseudonym(domain, "bsn", value))
        == version
    )


@settings(max_examples=50)
@given(k1=KEYS, domain=DOMAINS, values=st.lists(BSNS, min_size=1, max_size=30))
def test_rotation_changes_pseudonyms_and_the_mapping_is_exact(
    k1: bytes, domain: str, values: list[str]
) -> None:
    ring = KeyRing(1, {1: k1}).rotated()  # a fresh random key as version 2
    assert ring.current == 2
    old, new = Pseudonymiser(ring.key(1), 1), Pseudonymiser(ring.key(2), 2)
    mapping = dict(rotation_mapping(ring, domain, "bsn", values, 1, 2))
    assert len(mapping) == len(set(values))
    for value in values:
        before, after = old.pseudonym(domain, "bsn", value), new.pseudonym(domain, "bsn", value)
        assert before != after
        assert mapping[before] == after  # exact: every old pseudonym maps to its new one
    assert len(set(mapping.values())) == len(mapping)  # and no two people merge


@given(key=KEYS, domain=DOMAINS, kind=KINDS, values=st.lists(VALUES, min_size=1, max_size=5))
def test_remembered_pseudonyms_are_the_ones_made_afresh(
    key: bytes, domain: str, kind: str, values: list[str]
) -> None:
    remembering = Pseudonymiser(key, 2)
    first = [remembering.pseudonym(domain, kind, value) for value in values]
    again = [remembering.pseudonym(domain, kind, value) for value in reversed(values)]
    assert again == first[::-1]
    assert first == [Pseudonymiser(key, 2).pseudonym(domain, kind, value) for value in values]
    assert all(pseudonym_key_version(p) == 2 for p in first)
