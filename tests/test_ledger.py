"""The ledger's properties, once for every log that keeps a chain on it: an untouched chain
verifies, and each kind of tampering is found at the entry it touched, for the same reason,
every time."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalhub.ledger import GENESIS, Break, Chain, Entry, first_break, link, verify


def _material(prev_hash: str, payload: bytes) -> bytes:
    return prev_hash.encode() + b"\0" + payload


def chain_of(payloads: list[bytes]) -> list[Entry]:
    entries: list[Entry] = []
    for index, payload in enumerate(payloads):
        prev_hash = entries[-1].hash if entries else GENESIS
        entries.append(link(prev_hash, _material(prev_hash, b"%d:" % index + payload)))
    return entries


chains = st.lists(st.binary(max_size=16), min_size=1, max_size=12).map(chain_of)


def located(found: Break | None) -> tuple[int, str] | None:
    return None if found is None else (found.index, found.kind)


@given(chains)
def test_an_untouched_chain_verifies(entries: list[Entry]) -> None:
    assert verify(entries) == []
    assert first_break(entries) is None
    assert all(entry.sealed for entry in entries)


@given(chains, st.data())
def test_a_changed_entry_is_found_at_itself(entries: list[Entry], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(entries) - 1), label="index")
    edited = (entries[index].material or b"") + b"!"
    entries[index] = replace(entries[index], material=edited)
    assert located(first_break(entries)) == (index, "changed")


@given(chains, st.data())
def test_a_removed_entry_is_found_where_it_was(entries: list[Entry], data: st.DataObject) -> None:
    if len(entries) < 2:
        return
    index = data.draw(st.integers(0, len(entries) - 2), label="index")
    del entries[index]
    assert located(first_break(entries)) == (index, "removed")


@given(chains, st.data(), st.booleans())
def test_an_inserted_entry_is_found_at_itself(
    entries: list[Entry], data: st.DataObject, well_linked: bool
) -> None:
    index = data.draw(st.integers(0, len(entries) - 1), label="index")
    # A careful forger links the extra entry to the one before it; a careless one does not.
    prev_hash = (entries[index - 1].hash if index else GENESIS) if well_linked else "f" * 64
    extra = link(prev_hash, _material(prev_hash, b"extra"))
    entries.insert(index, extra)
    assert located(first_break(entries)) == (index, "inserted")
    assert [located(b) for b in verify(entries)] == [(index, "inserted")]


@given(chains, st.data())
def test_swapped_entries_are_found_at_the_first(entries: list[Entry], data: st.DataObject) -> None:
    if len(entries) < 2:
        return
    first = data.draw(st.integers(0, len(entries) - 2), label="first")
    second = data.draw(st.integers(first + 1, len(entries) - 1), label="second")
    entries[first], entries[second] = entries[second], entries[first]
    assert located(first_break(entries)) == (first, "reordered")


@given(chains, st.data())
def test_verification_is_deterministic(entries: list[Entry], data: st.DataObject) -> None:
    if len(entries) > 1:
        index = data.draw(st.integers(0, len(entries) - 1), label="index")
        del entries[index]
    assert verify(entries) == verify(tuple(entries)) == Chain(list(entries)).breaks()
    assert first_break(entries) == first_break(entries)
    found = verify(entries)
    assert (found[0] if found else None) == first_break(entries)


def test_an_entry_rewritten_with_its_hash_recomputed_shows_at_its_successor() -> None:
    entries = chain_of([b"a", b"b", b"c"])
    entries[1] = link(entries[0].hash, _material(entries[0].hash, b"1:forged"))
    found = first_break(entries)
    assert located(found) == (2, "removed")
    assert found is not None
    assert "entry 2 was rewritten" in found.why


def test_cutting_off_the_end_needs_a_hash_kept_elsewhere() -> None:
    entries = chain_of([b"a", b"b", b"c"])
    assert verify(entries[:-1]) == []  # why the audit store records its head


def test_an_unreadable_entry_cannot_match_its_hash() -> None:
    entries = chain_of([b"a", b"b"])
    entries[0] = replace(entries[0], material=None)
    assert located(first_break(entries)) == (0, "changed")


def test_a_chain_may_resume_from_an_anchor() -> None:
    entries = chain_of([b"a", b"b", b"c", b"d"])
    kept = [entries[0], entries[3]]  # entries 1 and 2 removed on purpose, ending at an anchor
    assert located(first_break(kept)) == (1, "removed")
    assert Chain(kept, anchored={1: entries[2].hash}).breaks() == []
    assert Chain(kept, anchored={1: None}).breaks() == []  # the log reports that gap itself
    wrong = Chain(kept, anchored={1: entries[1].hash}).first_break()
    assert located(wrong) == (1, "removed")


def test_breaks_name_entries_as_the_log_does() -> None:
    entries = chain_of([b"a", b"b", b"c"])
    entries[1], entries[2] = entries[2], entries[1]
    found = Chain(entries, name=lambda index: f"seq {index + 10}").first_break()
    assert found is not None
    assert found.why == "stored after seq 10 but links to seq 12"


def test_material_must_contain_the_previous_hash() -> None:
    with pytest.raises(ValueError, match="hash of the entry before it"):
        link(GENESIS, b"no link here")
