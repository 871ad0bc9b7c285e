"""The audit store's hash chain, on real SQLite and PostgreSQL: intact, and each kind of tampering.

Each tampering is done the way someone with database rights would do it (plain SQL, bypassing
the store), and verification must name the kind and the sequence number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit_store_support import BACKENDS, StoreHandle, decision, store_handle
from signalhub.audit.chain import row_hash
from signalhub.audit.store import record_body
from signalhub.ledger import GENESIS

pytestmark = pytest.mark.integration


@pytest.fixture(params=BACKENDS)
def handle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHandle]:
    with store_handle(request.param, tmp_path) as opened:
        opened.store.append([decision(n, subject_refs=(f"ref-{n % 3}",)) for n in range(1, 11)])
        yield opened


def findings(handle: StoreHandle) -> list[tuple[str, int]]:
    return [(f.kind, f.seq) for f in handle.store.verify().findings]


def test_intact_store_verifies(handle: StoreHandle) -> None:
    report = handle.store.verify()
    assert report.intact, report.findings
    assert report.rows == 10
    assert report.head_seq == 10
    first = handle.sql("SELECT prev_hash FROM audit_log WHERE seq = 1")[0][0]
    assert first == GENESIS


def test_append_is_idempotent_on_decision_id(handle: StoreHandle) -> None:
    head = handle.store.head()
    result = handle.store.append([decision(3), decision(11), decision(11)])
    assert (result.inserted, result.duplicates) == (1, 2)
    assert handle.store.count() == 11
    assert handle.store.head()[0] == head[0] + 1
    assert handle.store.verify().intact


def test_a_changed_record_is_found(handle: StoreHandle) -> None:
    handle.sql("UPDATE audit_log SET body = replace(body, 'politie', 'gemeente') WHERE seq = 4")
    assert findings(handle) == [("changed", 4)]


def test_a_changed_record_with_recomputed_hash_is_found_by_its_successor(
    handle: StoreHandle,
) -> None:
    kind, entry_id, body, prev = handle.sql(
        "SELECT kind, entry_id, body, prev_hash FROM audit_log WHERE seq = 4"
    )[0]
    forged = json.dumps({**json.loads(body), "purpose": "anything"})
    new_hash = row_hash(kind, entry_id, prev, forged)
    handle.sql("UPDATE audit_log SET body = ?, row_hash = ? WHERE seq = 4", (forged, new_hash))
    found = handle.store.verify().findings
    assert [(f.kind, f.seq) for f in found] == [("changed", 4)]
    assert "seq 5 links to a hash no row has" in found[0].message


def test_a_changed_query_column_is_found(handle: StoreHandle) -> None:
    handle.sql("UPDATE audit_log SET subscriber = 'om' WHERE seq = 6")
    found = handle.store.verify().findings
    assert [(f.kind, f.seq) for f in found] == [("changed", 6)]
    assert "column subscriber" in found[0].message


def test_a_removed_subject_reference_is_found(handle: StoreHandle) -> None:
    handle.sql("DELETE FROM audit_subject WHERE seq = 2")
    found = handle.store.verify().findings
    assert [(f.kind, f.seq) for f in found] == [("changed", 2)]
    assert "subject index" in found[0].message


def test_a_deleted_record_is_found(handle: StoreHandle) -> None:
    handle.sql("DELETE FROM audit_log WHERE seq = 5")
    handle.sql("DELETE FROM audit_subject WHERE seq = 5")
    found = handle.store.verify().findings
    assert [(f.kind, f.seq) for f in found] == [("deleted", 5)]
    assert "no retention entry declares it removed" in found[0].message


def test_deleted_records_at_the_end_are_found_from_the_head(handle: StoreHandle) -> None:
    handle.sql("DELETE FROM audit_log WHERE seq >= 9")
    handle.sql("DELETE FROM audit_subject WHERE seq >= 9")
    assert findings(handle) == [("truncated", 9)]


def test_an_inserted_record_is_found(handle: StoreHandle) -> None:
    # Make room at seq 5 (renumber 5..10 to 6..11), then insert a well-formed row that links
    # to seq 4, and move the head along, as a careful forger would.
    handle.sql("UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= 5")
    handle.sql("UPDATE audit_log SET seq = -seq WHERE seq < 0")
    prev = handle.sql("SELECT row_hash FROM audit_log WHERE seq = 4")[0][0]
    forged = decision(99)
    body = record_body(forged)
    digest = row_hash("decision", forged["decision_id"], prev, body)
    handle.sql(
        "INSERT INTO audit_log (seq, kind, entry_id, signal_id, signal_type, subscription_id, "
        "subscriber, outcome, delivery_id, decided_ms, body, prev_hash, row_hash) "
        "VALUES (5, 'decision', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            forged["decision_id"],
            forged["signal_id"],
            forged["signal_type"],
            forged["subscription_id"],
            forged["subscriber"],
            forged["outcome"],
            forged["delivery_id"],
            int(forged["decided_at"].timestamp() * 1000),
            body,
            prev,
            digest,
        ),
    )
    last = handle.sql("SELECT row_hash FROM audit_log WHERE seq = 11")[0][0]
    handle.sql("UPDATE audit_subject SET seq = seq + 100 WHERE seq >= 5")
    handle.sql("UPDATE audit_subject SET seq = seq - 99 WHERE seq >= 105")
    handle.sql("UPDATE audit_head SET seq = 11, row_hash = ?", (last,))
    found = handle.store.verify().findings
    assert [(f.kind, f.seq) for f in found] == [("inserted", 5)]
    assert "seq 6 links straight to seq 4" in found[0].message


def test_reordered_records_are_found(handle: StoreHandle) -> None:
    handle.sql("UPDATE audit_log SET seq = -1 WHERE seq = 6")
    handle.sql("UPDATE audit_log SET seq = 6 WHERE seq = 7")
    handle.sql("UPDATE audit_log SET seq = 7 WHERE seq = -1")
    handle.sql("UPDATE audit_subject SET seq = -1 WHERE seq = 6")
    handle.sql("UPDATE audit_subject SET seq = 6 WHERE seq = 7")
    handle.sql("UPDATE audit_subject SET seq = 7 WHERE seq = -1")
    found = handle.store.verify().findings
    assert [(f.kind, f.seq) for f in found] == [
        ("reordered", 6),
        ("reordered", 7),
        ("reordered", 8),
    ]
    assert "stored after seq 5 but links to seq 7" in found[0].message


def test_an_external_anchor_catches_a_rewritten_history(handle: StoreHandle) -> None:
    head = handle.store.head()
    # Rewrite the last row and everything after it consistently, head included.
    kind, entry_id, body, prev = handle.sql(
        "SELECT kind, entry_id, body, prev_hash FROM audit_log WHERE seq = 10"
    )[0]
    forged = json.dumps({**json.loads(body), "legal_basis": "none"})
    new_hash = row_hash(kind, entry_id, prev, forged)
    handle.sql("UPDATE audit_log SET body = ?, row_hash = ? WHERE seq = 10", (forged, new_hash))
    handle.sql("UPDATE audit_head SET row_hash = ?", (new_hash,))
    assert handle.store.verify().intact  # undetectable from inside the store...
    found = handle.store.verify(anchors=[head]).findings  # ...but not against a kept head
    assert [(f.kind, f.seq) for f in found] == [("anchor", 10)]


def _old_body(value: dict[str, object]) -> str:
    """A record body exactly as the store has always written it (canonical JSON, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _old_decision(n: int, millis: str) -> dict[str, object]:
    return {
        "decision_id": f"dec-{n}",
        "signal_id": f"sig-{n}",
        "signal_type": "nuisance_report",
        "subscription_id": "gemeente-sub",
        "subscriber": "gemeente",
        "outcome": "allow",
        "delivery_id": f"del-{n}",
        "decided_at": f"2024-03-01T09:0{n}:00.{millis}Z",
        "subject_refs": [f"ref-{n % 2}"],
        "purpose": "openbare orde — overlast",
        "reasons": ["afspraak “wijkteam” geldig"],
        "fields_disclosed": ["category", "severity"],
    }


# Written by the store before it kept its chain on the ledger: decisions 1..3, a retention run
# that removed 1..2 (anchored at 2's hash), then decision 4. The hashes are that code's output.
_OLD_HASHES = {
    2: "bd64b15a0e93dff81d04f3ab9ed6256fa9c66a63da6c61be0ea9562057b53ded",
    3: "b45fd470dda61c78529c02e8f40b1b6dc3ca2964ad9fde999abf7f9534354b17",
    4: "c5616449b18624e57ca121ef7655460f64214aaf6c97be973bdc443bbe056d10",
    5: "39587a9982fc86f2d413183520e3b40f5126c8b7858e6b174e36575f7dd10957",
}


def _old_rows() -> list[tuple[object, ...]]:
    retention = {
        "kind": "retention",
        "ran_at": "2024-04-01T00:00:00.000Z",
        "audit_store": {
            "removed": 2,
            "removed_ranges": [{"anchor": _OLD_HASHES[2], "first_seq": 1, "last_seq": 2}],
        },
    }
    third, fourth = _old_decision(3, "500"), _old_decision(4, "750")
    columns = ("nuisance_report", "gemeente-sub", "gemeente", "allow")
    return [
        (3, "decision", "dec-3", "sig-3", *columns, "del-3", 1709283780500, _old_body(third),
         _OLD_HASHES[2], _OLD_HASHES[3]),
        (4, "retention", "retention-1", None, None, None, None, None, None, 1711929600000,
         _old_body(retention), _OLD_HASHES[3], _OLD_HASHES[4]),
        (5, "decision", "dec-4", "sig-4", *columns, "del-4", 1709283840750, _old_body(fourth),
         _OLD_HASHES[4], _OLD_HASHES[5]),
    ]  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_chain_written_before_the_ledger_still_verifies(backend: str, tmp_path: Path) -> None:
    with store_handle(backend, tmp_path) as old:
        for row in _old_rows():
            marks = ", ".join("?" for _ in row)
            old.sql(f"INSERT INTO audit_log VALUES ({marks})", row)
        old.sql("INSERT INTO audit_subject VALUES ('ref-1', 3), ('ref-0', 5)")
        old.sql("UPDATE audit_head SET seq = 5, row_hash = ?", (_OLD_HASHES[5],))
        report = old.store.verify(anchors=[(5, _OLD_HASHES[5])])
        assert report.intact, report.findings
        assert report.removed_by_retention == 2
        body = _old_body(_old_decision(3, "500"))
        assert row_hash("decision", "dec-3", _OLD_HASHES[2], body) == _OLD_HASHES[3]
        # and the chain goes on from there
        assert old.store.append([_old_decision(5, "000")]).inserted == 1
        assert old.store.verify().intact
