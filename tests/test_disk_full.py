"""A full disk under the state directory: no delivery without its vault record, exit, recover.

Issue 13 saw deliveries reach Kafka while the re-identification vault held none of their
pseudonyms, and an enforcer that then hung. Here the enforcer worker runs as users run it (a
``signalhub enforcer`` child process) with its state directory on a small tmpfs that the test
fills: the worker must exit non-zero within a bound, naming the cause, without delivering
anything whose pseudonyms the vault lacks; once space is back a new worker delivers every signal
and the vault holds every pseudonym delivered.

The bundler runs beside it on the same state directory: it must exit the same way and, once
space is back, take in every signal.

The unit tests show the same guarantee in the core, without Kafka: a vault that cannot be written
(a real :class:`Vault` switched to read-only) stops the batch before any output and is never
dead-lettered, and the bundler's store reports the same failure as a :class:`StateWriteError`.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from disk_support import PSEUDONYM, delivered_pseudonyms, fill, missing_from_vault, mounted_tmpfs
from hub_support import Hub, ListSource, new_person, politie_row
from pseudonym_support import enforcement, nuisance, source_record
from signalhub.apps.demo import prepare_settings
from signalhub.apps.stack import BundlerProcess, EnforcerProcess
from signalhub.audit import record as audit_record
from signalhub.broker.admin import create_topics
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.bundling.service import progress
from signalhub.bundling.store import BundleStore
from signalhub.config import load_settings, settings_env
from signalhub.connector import load_definitions
from signalhub.enforcer.worker import enforcer_topics
from signalhub.errors import StateWriteError
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.keys import load_master_key
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.pseudonym.vault import Vault, VaultSink
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import load_subscriptions

#: Room for the keys, the vault, the bundler's state and faust's data directory, little more.
TMPFS_SIZE = "2m"
#: How long a role may take to exit once its state file cannot be written.
EXIT_BOUND_S = 30.0
CODES = ("F350", "F354", "D300", "D500", "I110", "I200")
VAULT_KEY = bytes(range(32, 64))
#: ``EX_IOERR``: what a role exits with when its state file cannot be written.
EX_IOERR = 74


# -- the core, without Kafka ----------------------------------------------------------------


def _read_only(vault: Vault, read_only: bool) -> None:
    """Make SQLite refuse (or accept again) every write to this vault connection."""
    vault.db.execute(f"PRAGMA query_only={int(read_only)}")


def test_a_vault_that_cannot_be_written_stops_the_batch_before_any_output(
    tmp_path: Path,
) -> None:
    vault = Vault(tmp_path / "vault.sqlite", VAULT_KEY)
    core = enforcement(sink=VaultSink(vault))
    batch = [source_record(nuisance(), offset=0), source_record(nuisance(), offset=1)]
    _read_only(vault, True)

    with pytest.raises(StateWriteError, match=r"vault write failed: .*readonly") as caught:
        core.process_batch(batch)
    assert str(tmp_path / "vault.sqlite") in str(caught.value)
    assert core.stats.dead_letters == {}, "the hub's I/O error is not the record's fault"

    _read_only(vault, False)  # space is back: the same records go through, vault first
    outputs = core.process_batch(batch)
    deliveries = [o for o in outputs if o.topic.startswith("deliveries.")]
    assert deliveries
    carried = {p for o in deliveries for p in PSEUDONYM.findall(o.value.decode("latin-1"))}
    assert carried, "the shipped policy pseudonymises nuisance signals"
    stored = {row[0] for row in vault.db.execute("SELECT pseudonym FROM pseudonyms")}
    assert carried <= stored
    vault.close()


def test_a_vault_failing_in_the_middle_of_a_batch_is_not_dead_lettered(tmp_path: Path) -> None:
    """A sink that writes as it goes (``batch=1``) fails inside ``process``: it must propagate."""
    vault = Vault(tmp_path / "vault.sqlite", VAULT_KEY)
    core = enforcement(sink=VaultSink(vault, batch=1))
    _read_only(vault, True)
    with pytest.raises(StateWriteError):
        core.process(source_record(nuisance()))
    assert core.stats.dead_letters == {}
    vault.close()


def test_a_refused_write_leaves_the_vault_usable_once_the_cause_is_gone(tmp_path: Path) -> None:
    """SQLITE_FULL may end the transaction itself: the cause must still be what is reported,
    and the next write, once there is room, must work (no transaction left open)."""
    vault = Vault(tmp_path / "vault.sqlite", VAULT_KEY)
    pseudonymiser = Pseudonymiser(bytes(range(32)))
    bsns = [f"{n:09d}" for n in range(300)]
    rows = [("gemeente", "bsn", b, pseudonymiser.pseudonym("gemeente", "bsn", b)) for b in bsns]
    pages = vault.db.execute("PRAGMA page_count").fetchone()[0]
    vault.db.execute(f"PRAGMA max_page_count={pages}")  # no room for one more page
    with pytest.raises(StateWriteError, match="vault write failed: database or disk is full"):
        vault.put_many(rows)
    assert not vault.db.in_transaction
    assert vault.entry("gemeente", rows[0][3]) is None, "none of the batch is kept"
    vault.db.execute("PRAGMA max_page_count=1073741823")
    vault.put_many(rows)
    assert vault.identifier("gemeente", rows[-1][3]) == bsns[-1]
    vault.close()


def test_the_bundler_store_reports_a_refused_write_as_a_state_write_error(tmp_path: Path) -> None:
    with BundleStore(tmp_path / "bundling.sqlite") as store:
        store.execute("PRAGMA query_only=1")
        with (
            pytest.raises(StateWriteError, match=r"bundler state write failed: .*readonly"),
            store.transaction(),
        ):
            store.add_signal("s-1", "nuisance_report", "politie", 0, "BU0935", "2026-W01")
        store.execute("PRAGMA query_only=0")
        with store.transaction():
            assert store.add_signal("s-1", "nuisance_report", "politie", 0, "BU0935", "2026-W01")


# -- the roles as users run them -------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of :data:`TMPFS_SIZE` mounted for this test (root only), unmounted after."""
    with mounted_tmpfs(tmp_path / "state", TMPFS_SIZE) as mount:
        yield mount


@contextlib.contextmanager
def hub_on(bootstrap: str, state_dir: Path, log_path: Path) -> Iterator[Hub]:
    """Topics plus one enforcer worker whose state is ``state_dir`` and whose log is elsewhere.

    The log stays off the small disk, so the worker's last words can be read after it is full.
    """
    group = f"disk-full-{uuid.uuid4().hex[:8]}"
    settings = prepare_settings(
        load_settings(bootstrap_servers=bootstrap, state_dir=state_dir, enforcer_group=group)
    )
    sources, sinks = enforcer_topics(settings)
    create_topics(bootstrap, sources, partitions=settings.partitions)
    create_topics(bootstrap, sinks, partitions=1)
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    audit_record.register_audit_schemas(registry, settings.schemas_dir)
    policy = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
    master_key, version = load_master_key(settings)
    enforcer = EnforcerProcess(bootstrap, log_path, settings_env(settings))
    try:
        yield Hub(
            settings=settings,
            bootstrap=bootstrap,
            registry=registry,
            enforcer=enforcer.start(),
            policy=policy,
            subscriptions=load_subscriptions(settings.subscriptions_file, registry.signal_types()),
            pseudonymiser=Pseudonymiser(master_key, version),
            definitions=load_definitions(settings.connectors_dir),
        )
    finally:
        enforcer.stop()
        policy.close()


def _signals(hub: Hub, count: int, name: str) -> list[str]:
    """Publish ``count`` police signals about new people (so every pseudonym is new)."""
    rows = [politie_row(new_person(), CODES[n % len(CODES)], ernst="4") for n in range(count)]
    report, _ = hub.run_connector("politie", ListSource(rows, name=name))
    assert len(report.signal_ids) == count
    return list(report.signal_ids)


def _exit_time(role: EnforcerProcess | BundlerProcess, since: float, bound_s: float) -> float:
    """Seconds from ``since`` until ``role`` exited (at most ``bound_s``)."""
    while role.running and time.monotonic() - since < bound_s:
        time.sleep(0.05)
    return time.monotonic() - since


def _assert_exited_on_the_full_disk(
    role: EnforcerProcess | BundlerProcess, log_path: Path, what: str, restarts: str
) -> None:
    assert not role.running, f"the {what} still runs {EXIT_BOUND_S:.0f} s after the disk filled"
    assert role.exit_code == EX_IOERR, role.log_tail()
    lines = log_path.read_text(errors="replace").splitlines()
    cause = [line for line in lines if f"{what} write failed: database or disk is full" in line]
    assert len(cause) == 1, role.log_tail()
    assert f"exiting so the supervisor restarts {restarts}" in cause[0]
    assert not any("Traceback" in line for line in lines), "one clear line, not a traceback"


def _bundled(hub: Hub, ids: list[str], bundler: BundlerProcess, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while (done := progress(hub.settings, ids).processed) < len(ids):
        bundler.check_alive()
        if time.monotonic() > deadline:
            return done
        time.sleep(0.2)
    return done


@pytest.mark.integration
def test_a_full_state_disk_stops_the_roles_before_they_deliver_unrecorded_pseudonyms(
    small_disk: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "enforcer.log", tmp_path / "bundler.log"
    with EmbeddedBroker() as broker, hub_on(broker.bootstrap_servers, small_disk, logs[0]) as hub:
        bundler = BundlerProcess(hub.bootstrap, logs[1], settings_env(hub.settings)).start()
        try:
            warm_up = _signals(hub, 5, "warm-up")
            hub.wait_accounted(warm_up, timeout_s=90)  # joined its group, vault written once
            assert _bundled(hub, warm_up, bundler, timeout_s=60) == len(warm_up)

            filler = small_disk / "filler"
            fill(filler)
            filled = time.monotonic()
            on_full_disk = _signals(hub, 100, "full-disk")
            published_s = time.monotonic() - filled
            enforcer_s = _exit_time(hub.enforcer, filled, EXIT_BOUND_S)
            bundler_s = _exit_time(bundler, filled, EXIT_BOUND_S)
            print(
                f"disk full: 100 signals published in {published_s:.1f} s; enforcer exited "
                f"({hub.enforcer.exit_code}) after {enforcer_s:.1f} s, bundler "
                f"({bundler.exit_code}) after {bundler_s:.1f} s"
            )
            _assert_exited_on_the_full_disk(hub.enforcer, logs[0], "vault", "this worker")
            _assert_exited_on_the_full_disk(bundler, logs[1], "bundler state", "the bundler")

            # Restarted while the disk is still full (a supervisor's first retry): it exits again.
            again = time.monotonic()
            hub.enforcer.start()
            again_s = _exit_time(hub.enforcer, again, EXIT_BOUND_S)
            print(f"full disk again: exited ({hub.enforcer.exit_code}) after {again_s:.1f} s")
            assert not hub.enforcer.running, "a worker restarted on a full disk must not hang"
            assert hub.enforcer.exit_code == EX_IOERR, hub.enforcer.log_tail()

            published = warm_up + on_full_disk
            assert missing_from_vault(hub.settings, hub.deliveries(published)) == []

            filler.unlink()
            restarted = time.monotonic()
            hub.enforcer.start()
            bundler.start()
            accounting = hub.wait_accounted(published, timeout_s=90)
            print(f"space back: every signal accounted {time.monotonic() - restarted:.1f} s after")
            assert _bundled(hub, published, bundler, timeout_s=60) == len(published)
        finally:
            bundler.stop()

        rows = hub.audit_rows(accounting, published)
        outcomes = {row["outcome"] for r in rows.values() for row in r}
        assert "error" not in outcomes, "nothing failed for the records' own sake"
        assert not {d["key"] for d in accounting.dead_letters} & set(published), (
            "an I/O error is never the record's fault: nothing dead-lettered"
        )
        allowed = {
            row["delivery_id"] for r in rows.values() for row in r if row["outcome"] == "allow"
        }
        deliveries = hub.wait_deliveries(allowed, published, timeout_s=30)
        assert {d.decoded.delivery_id for d in deliveries} == allowed
        assert any(delivered_pseudonyms(d) for d in deliveries), "some deliveries carry pseudonyms"
        assert missing_from_vault(hub.settings, deliveries) == []
