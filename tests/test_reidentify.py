"""Break-glass re-identification over the encrypted vault: two officers, expiry, one reveal,
own domain only, and an audit event for every step (refusals included)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pseudonym_support import BSN, KEY, ListSink, enforcement, nuisance, source_record
from signalhub.config import Settings
from signalhub.errors import KeyProviderError, ReidentificationError
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.pseudonym.reidentify import Reidentification, subscriber_domains
from signalhub.pseudonym.vault import Vault, VaultSink, ensure_vault_key, load_vault_key

VAULT_KEY = bytes(range(50, 82))
OFFICERS = frozenset({"officer-a", "officer-b", "officer-c"})


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    vault = Vault(tmp_path / "vault.sqlite", VAULT_KEY)
    pseudonymiser = Pseudonymiser(KEY)
    rows = [
        (domain, "bsn", BSN, pseudonymiser.pseudonym(domain, "bsn", BSN))
        for domain in ("woningcorporatie", "politie", "zvh-casework")
    ]
    vault.put_many(rows)
    return vault


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def workflow(vault: Vault, clock: Clock) -> Reidentification:
    domains = subscriber_domains(Settings().policies_dir)
    return Reidentification(vault, OFFICERS, domains, timedelta(hours=4), clock)


def _pseudonym(domain: str) -> str:
    return Pseudonymiser(KEY).pseudonym(domain, "bsn", BSN)


def _request(workflow: Reidentification, subscriber: str = "woningcorporatie") -> str:
    return workflow.request(
        subscriber, "j.jansen", _pseudonym(subscriber), "eviction hearing", "WC-2026-17"
    ).request_id


def _events(workflow: Reidentification, request_id: str | None = None) -> list[str]:
    return [event.event for event in workflow.audit_trail(request_id)]


# --- the vault ----------------------------------------------------------------------------------


def test_vault_holds_identifiers_sealed_and_bound_to_their_pseudonym(vault: Vault) -> None:
    raw = vault.path.read_bytes() + b"".join(
        row[0] for row in vault.db.execute("SELECT sealed FROM pseudonyms")
    )
    assert BSN.encode() not in raw
    assert vault.identifier("politie", _pseudonym("politie")) == BSN
    entry = vault.entry("politie", _pseudonym("politie"))
    assert entry is not None
    assert (entry.key_version, entry.kind) == (1, "bsn")
    # a row moved to another pseudonym does not decrypt
    vault.db.execute(
        "UPDATE pseudonyms SET pseudonym = ? WHERE domain = 'politie'", (_pseudonym("om"),)
    )
    with pytest.raises(KeyProviderError, match="does not decrypt"):
        vault.identifier("politie", _pseudonym("om"))


def test_vault_with_another_key_cannot_read(vault: Vault) -> None:
    other = Vault(vault.path, bytes(32))
    with pytest.raises(KeyProviderError, match="wrong vault key"):
        other.identifier("politie", _pseudonym("politie"))


def test_vault_writes_a_batch_in_one_fully_synced_transaction(tmp_path: Path) -> None:
    vault = Vault(tmp_path / "vault.sqlite", VAULT_KEY)
    statements: list[str] = []
    vault.db.set_trace_callback(statements.append)
    pseudonymiser = Pseudonymiser(KEY)
    values = ["111222333", "123456782", "Piet de Vries"]
    vault.put_many(
        [("politie", "bsn", v, pseudonymiser.pseudonym("politie", "bsn", v)) for v in values]
    )
    vault.db.set_trace_callback(None)
    assert (statements[0], statements[-1]) == ("BEGIN IMMEDIATE", "COMMIT")
    assert statements.count("COMMIT") == 1
    assert vault.db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    # another connection (another worker, or this one after a crash) sees every row
    with sqlite3.connect(vault.path) as other:
        assert other.execute("SELECT count(*) FROM pseudonyms").fetchone() == (3,)


def test_vault_key_file_must_be_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    assert ensure_vault_key(path)
    assert not ensure_vault_key(path)
    settings = Settings(state_dir=tmp_path)
    assert len(load_vault_key(settings)) == 32
    path.chmod(0o640)
    with pytest.raises(KeyProviderError, match="chmod 600") as caught:
        load_vault_key(settings)
    assert path.read_text().split("\n")[1] not in str(caught.value)


def test_the_enforcer_records_every_pseudonym_it_issues(tmp_path: Path) -> None:
    sink = ListSink()
    enforcement(sink=sink).process(source_record(nuisance()))
    domains = {row[0] for row in sink.rows}
    assert domains == {"woningcorporatie", "gemeente", "politie"}
    assert all(row[3] == Pseudonymiser(KEY).pseudonym(row[0], row[1], row[2]) for row in sink.rows)
    vault = Vault(tmp_path / "v.sqlite", VAULT_KEY)
    vault_sink = VaultSink(vault, batch=2)
    enforcement(sink=vault_sink).process(source_record(nuisance()))
    vault_sink.flush()
    assert vault.identifier("gemeente", _pseudonym("gemeente")) == BSN


# --- the workflow -------------------------------------------------------------------------------


def test_two_different_officers_then_one_reveal_to_the_requester(
    workflow: Reidentification,
) -> None:
    request_id = _request(workflow)
    assert workflow.approve(request_id, "officer-a").state == "pending"
    assert workflow.approve(request_id, "officer-b").state == "approved"
    with pytest.raises(ReidentificationError, match="only the requester"):
        workflow.reveal(request_id, "woningcorporatie", "someone-else")
    assert workflow.reveal(request_id, "woningcorporatie", "j.jansen") == BSN
    with pytest.raises(ReidentificationError, match="revealed"):
        workflow.reveal(request_id, "woningcorporatie", "j.jansen")
    assert _events(workflow, request_id) == [
        "requested",
        "approved",
        "approved",
        "reveal_refused",
        "revealed",
        "reveal_refused",
    ]
    assert BSN not in str([e.detail for e in workflow.audit_trail()])


def test_one_approver_is_not_enough(workflow: Reidentification) -> None:
    request_id = _request(workflow)
    workflow.approve(request_id, "officer-a")
    with pytest.raises(ReidentificationError, match="2 approvals by different officers"):
        workflow.reveal(request_id, "woningcorporatie", "j.jansen")
    assert _events(workflow, request_id)[-1] == "reveal_refused"


def test_the_same_officer_twice_does_not_count(workflow: Reidentification) -> None:
    request_id = _request(workflow)
    workflow.approve(request_id, "officer-a")
    with pytest.raises(ReidentificationError, match="already approved"):
        workflow.approve(request_id, "officer-a")
    assert workflow.get(request_id).state == "pending"
    with pytest.raises(ReidentificationError):
        workflow.reveal(request_id, "woningcorporatie", "j.jansen")
    assert _events(workflow, request_id) == [
        "requested",
        "approved",
        "approval_refused",
        "reveal_refused",
    ]


def test_requester_and_unknown_officers_cannot_approve(workflow: Reidentification) -> None:
    request_id = workflow.request(
        "politie", "officer-a", _pseudonym("politie"), "threat", "PL-1"
    ).request_id
    with pytest.raises(ReidentificationError, match="own request"):
        workflow.approve(request_id, "officer-a")
    with pytest.raises(ReidentificationError, match="not an authorised"):
        workflow.approve(request_id, "mallory")
    assert _events(workflow, request_id).count("approval_refused") == 2


def test_after_expiry_nothing_completes(workflow: Reidentification, clock: Clock) -> None:
    request_id = _request(workflow)
    workflow.approve(request_id, "officer-a")
    workflow.approve(request_id, "officer-b")
    clock.now += timedelta(hours=5)
    with pytest.raises(ReidentificationError, match="expired"):
        workflow.reveal(request_id, "woningcorporatie", "j.jansen")
    assert workflow.get(request_id).state == "expired"
    with pytest.raises(ReidentificationError, match="expired"):
        workflow.approve(request_id, "officer-c")
    assert _events(workflow, request_id)[-3:] == ["expired", "reveal_refused", "approval_refused"]


def test_an_approval_expires_on_its_own(workflow: Reidentification, clock: Clock) -> None:
    request_id = _request(workflow)
    workflow.approve(request_id, "officer-a")
    clock.now += timedelta(hours=3, minutes=30)
    workflow.approve(request_id, "officer-b")
    clock.now += timedelta(minutes=45)  # officer-a's approval is 4h15 old, the request too
    with pytest.raises(ReidentificationError, match="expired"):
        workflow.reveal(request_id, "woningcorporatie", "j.jansen")


def test_a_pseudonym_of_another_domain_is_refused(workflow: Reidentification) -> None:
    with pytest.raises(ReidentificationError, match="not a pseudonym the hub issued"):
        workflow.request("woningcorporatie", "j.jansen", _pseudonym("politie"), "curious", "X-1")
    assert _events(workflow) == ["request_refused"]
    assert workflow.list_requests() == []


def test_a_shared_domain_belongs_to_its_partners(workflow: Reidentification) -> None:
    request = workflow.request("om", "o.officier", _pseudonym("zvh-casework"), "hearing", "OM-9")
    assert request.domain == "zvh-casework"
    with pytest.raises(ReidentificationError):
        workflow.request("woningcorporatie", "j.jansen", _pseudonym("zvh-casework"), "r", "c")


def test_a_refusal_closes_the_request(workflow: Reidentification) -> None:
    request_id = _request(workflow)
    workflow.approve(request_id, "officer-a")
    assert workflow.refuse(request_id, "officer-b", "no proportionality").state == "refused"
    with pytest.raises(ReidentificationError, match="refused"):
        workflow.approve(request_id, "officer-c")
    assert "refused" in _events(workflow, request_id)


def test_a_request_needs_reason_and_case_reference(workflow: Reidentification) -> None:
    with pytest.raises(ReidentificationError, match="reason"):
        workflow.request("woningcorporatie", "j.jansen", _pseudonym("woningcorporatie"), " ", "")
    assert _events(workflow) == ["request_refused"]


def test_the_audit_trail_is_hash_chained(workflow: Reidentification, vault: Vault) -> None:
    request_id = _request(workflow)
    workflow.approve(request_id, "officer-a")
    assert workflow.verify_audit() == []
    vault.db.execute("UPDATE reid_audit SET actor = 'nobody' WHERE seq = 1")
    assert workflow.verify_audit() == [1]


# --- atomicity and concurrency ------------------------------------------------------------------


def _fail_audit_inserts(vault: Vault) -> None:
    """A real failure at the audit step (as a full disk or a locked file would cause)."""
    vault.db.execute(
        "CREATE TRIGGER audit_fails BEFORE INSERT ON reid_audit "
        "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"
    )


@pytest.mark.parametrize(
    ("approved_by", "step"),
    [
        pytest.param(["officer-a"], lambda w, rid: w.approve(rid, "officer-b"), id="approve"),
        pytest.param(["officer-a"], lambda w, rid: w.refuse(rid, "officer-b", "no"), id="refuse"),
        pytest.param(
            ["officer-a", "officer-b"],
            lambda w, rid: w.reveal(rid, "woningcorporatie", "j.jansen"),
            id="reveal",
        ),
    ],
)
def test_a_step_whose_audit_event_fails_changes_nothing(
    workflow: Reidentification,
    vault: Vault,
    approved_by: list[str],
    step: Callable[[Reidentification, str], object],
) -> None:
    request_id = _request(workflow)
    for officer in approved_by:
        workflow.approve(request_id, officer)
    before = workflow.get(request_id)
    _fail_audit_inserts(vault)
    with pytest.raises(sqlite3.IntegrityError, match="audit store unavailable"):
        step(workflow, request_id)
    assert workflow.get(request_id) == before
    assert not vault.db.in_transaction


def test_a_request_whose_audit_event_fails_is_not_filed(
    workflow: Reidentification, vault: Vault
) -> None:
    _fail_audit_inserts(vault)
    with pytest.raises(sqlite3.IntegrityError, match="audit store unavailable"):
        _request(workflow)
    assert workflow.list_requests() == []


def test_concurrent_writers_keep_one_unforked_audit_chain(
    workflow: Reidentification, vault: Vault, clock: Clock
) -> None:
    """Another process appends while this one is between reading the last hash and inserting.

    The clock is read between the two, so it is the seam: it lets a second writer (its own
    connection to the same file, as a second CLI run would have) go, and waits until that writer
    has either finished (the old, forking behaviour) or is queued for the write lock."""
    go, queued_or_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_process() -> None:
        try:
            with Vault(vault.path, VAULT_KEY) as other_vault:
                other = Reidentification(
                    other_vault, OFFICERS, lambda s: frozenset({s}), timedelta(hours=4), clock
                )
                other_vault.db.set_trace_callback(
                    lambda sql: queued_or_done.set() if sql.startswith("BEGIN") else None
                )
                go.wait(timeout=10)
                with pytest.raises(ReidentificationError):
                    other.request("politie", "", _pseudonym("politie"), "", "")
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)
        finally:
            queued_or_done.set()

    def interleaving_clock() -> datetime:
        if not go.is_set():
            go.set()
            assert queued_or_done.wait(timeout=10)
        return clock()

    thread = threading.Thread(target=other_process)
    thread.start()
    this = Reidentification(
        vault, OFFICERS, lambda s: frozenset({s}), timedelta(hours=4), interleaving_clock
    )
    with pytest.raises(ReidentificationError):
        this.request("woningcorporatie", "", _pseudonym("woningcorporatie"), "", "")
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert errors == []
    # the other writer queued behind this one's transaction, then chained onto its event
    assert [(e.event, e.actor) for e in workflow.audit_trail()] == [
        ("request_refused", "@woningcorporatie"),
        ("request_refused", "@politie"),
    ]
    assert workflow.verify_audit() == []


def test_cli_flow_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from signalhub.pseudonym.cli import reidentify_group

    for name in ("SIGNALHUB_MASTER_KEY", "SIGNALHUB_KEY_FILE", "SIGNALHUB_VAULT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNALHUB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SIGNALHUB_REIDENTIFY_OFFICERS", "officer-a, officer-b")
    ensure_vault_key(tmp_path / "vault.key")
    with Vault(tmp_path / "vault.sqlite", load_vault_key(Settings(state_dir=tmp_path))) as v:
        v.put_many([("politie", "bsn", BSN, _pseudonym("politie"))])
    runner = CliRunner()
    made = runner.invoke(
        reidentify_group,
        ["request", "--subscriber", "politie", "--requested-by", "r.agent",
         "--pseudonym", _pseudonym("politie"), "--reason", "threat", "--case-ref", "PL-7"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    request_id = made.output.split()[0]
    for officer in ("officer-a", "officer-b"):
        assert (
            runner.invoke(reidentify_group, ["approve", request_id, "--officer", officer]).exit_code
            == 0
        )
    shown = runner.invoke(
        reidentify_group,
        ["reveal", request_id, "--subscriber", "politie", "--requested-by", "r.agent"],
    )
    assert shown.output.strip() == BSN
    again = runner.invoke(
        reidentify_group,
        ["reveal", request_id, "--subscriber", "politie", "--requested-by", "r.agent"],
    )
    assert again.exit_code == 1
    assert "Error:" in again.output
    trail = runner.invoke(reidentify_group, ["audit", request_id])
    assert trail.exit_code == 0
    assert BSN not in trail.output
    assert "revealed" in trail.output
    assert (
        sqlite3.connect(tmp_path / "vault.sqlite")
        .execute("SELECT count(*) FROM reid_audit")
        .fetchone()[0]
        == 5
    )


def test_a_refusal_between_the_checks_and_the_reveal_wins(
    workflow: Reidentification, vault: Vault, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process refuses after reveal() checked the request but before it wrote."""
    request_id = _request(workflow)
    workflow.approve(request_id, "officer-a")
    workflow.approve(request_id, "officer-b")
    read_identity = vault.identifier

    def refused_meanwhile(domain: str, pseudonym: str) -> str:
        with Vault(vault.path, VAULT_KEY) as other_vault:
            other = Reidentification(
                other_vault, OFFICERS, subscriber_domains(Settings().policies_dir),
                timedelta(hours=4), clock,
            )  # fmt: skip
            other.refuse(request_id, "officer-c", "no longer proportional")
        return read_identity(domain, pseudonym)

    monkeypatch.setattr(vault, "identifier", refused_meanwhile)
    with pytest.raises(ReidentificationError, match="closed by another step"):
        workflow.reveal(request_id, "woningcorporatie", "j.jansen")
    assert workflow.get(request_id).state == "refused"
    assert _events(workflow, request_id)[-2:] == ["refused", "reveal_refused"]
    assert workflow.verify_audit() == []


# Written by the workflow before its trail was kept on the ledger; the hashes are that code's.
_OLD_TRAIL = [
    ("2026-06-01T09:00:00.000000+00:00", "request_refused", None, "zoë@politie",
     '{"case_ref":"PL-1","pseudonym":"PS-1","why":"a reason, a case reference and the '
     "requester's name are required\"}",
     "0" * 64, "f94a256366ec7a6906371baf67b046a7f9d02e5ccb0dcfdd2402ee28149a24ae"),
    ("2026-06-01T09:00:01.000000+00:00", "request_refused", None, "zoë@politie",
     '{"case_ref":"PL-2","pseudonym":"PS-unknown","why":"PS-unknown is not a pseudonym the hub '
     'issued in a domain of politie"}',
     "f94a256366ec7a6906371baf67b046a7f9d02e5ccb0dcfdd2402ee28149a24ae",
     "effa76d7cacb661e6c170407e06b3c77ff900872b66ef339ccbe3b91a5c62d91"),
    ("2026-06-01T09:00:02.000000+00:00", "approval_refused", "no-such", "officer-a",
     '{"why":"no such request"}',
     "effa76d7cacb661e6c170407e06b3c77ff900872b66ef339ccbe3b91a5c62d91",
     "144567a9ae3a8e29211d7e1007a8e4e04ec96942754bf93df9f6ca0c77e2b3e2"),
]  # fmt: skip


def test_a_trail_written_before_the_ledger_still_verifies(
    workflow: Reidentification, vault: Vault
) -> None:
    vault.db.executemany(
        "INSERT INTO reid_audit (at, event, request_id, actor, detail, prev_hash, hash) "
        "VALUES (?,?,?,?,?,?,?)",
        _OLD_TRAIL,
    )
    assert workflow.verify_audit() == []
    _request(workflow)
    assert [e.event for e in workflow.audit_trail()][-2:] == ["approval_refused", "requested"]
    assert workflow.verify_audit() == []
    vault.db.execute("DELETE FROM reid_audit WHERE seq = 2")
    assert workflow.verify_audit() == [3]  # the event after the gap lost its link
