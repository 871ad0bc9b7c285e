"""Acceptance on a real embedded broker and enforcer: hot switch, refusal, fail closed, retry.

Runs on a broker of its own: the ``policies`` topic is global to a broker, and a version
published here must not reach the enforcers of other tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from policy_support import (
    AGREEMENT,
    POLICIES,
    add_clear_field,
    add_failing_test,
    break_syntax,
    copy_policies,
    nuisance_signal,
    registry,
    undecided_policy,
)
from signalhub.apps.demo import Accounting, prepare_settings, run_stack
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.config import Settings, load_settings
from signalhub.connector.publisher import KafkaPublisher
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import read_deliveries
from signalhub.enforcer.parked import RetryState, retry_parked
from signalhub.errors import PolicyError
from signalhub.policy.bundle import bundle_from_dir
from signalhub.policy.lifecycle import policy_in_force, publish_policy
from signalhub.policy.store import PolicyStore, read_current_bundle, send_bundle
from signalhub.schema import codec
from signalhub.subscriptions import by_signal_type, load_subscriptions
from signalhub.wire import delivery_id

pytestmark = pytest.mark.integration
SUB = "gemeente-openbare-orde"


@pytest.fixture(scope="module")
def own_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


class Sender:
    def __init__(self, bootstrap: str) -> None:
        self._registry = registry()
        self._schema = self._registry.signal("nuisance_report")
        self._publisher = KafkaPublisher(bootstrap)

    def send(self, count: int = 1) -> list[str]:
        ids = []
        for _ in range(count):
            signal = nuisance_signal()
            value = codec.encode(self._registry, self._schema.avro, signal)
            signal_id = signal["envelope"]["signal_id"]
            self._publisher.publish(self._schema.topic, signal_id.encode(), value)
            ids.append(signal_id)
        self._publisher.flush()
        return ids

    def close(self) -> None:
        self._publisher.close()


def _audit_for(accounting: Accounting, ids: set[str]) -> list[dict[str, Any]]:
    return [r for r in accounting.audit if r["signal_id"] in ids and r["subscription_id"] == SUB]


def _wait_for_version(sender: Sender, accounting: Accounting, version: str, enforcer: Any) -> None:
    """Send probes until one is decided by ``version`` (the watcher has switched)."""
    for _ in range(40):
        probe = set(sender.send())
        accounting.wait_for(probe, lambda _: None, enforcer, timeout_s=60)
        if any(r["policy_version"] == version for r in _audit_for(accounting, probe)):
            return
        time.sleep(0.25)
    raise AssertionError(f"the enforcer never switched to {version}")


def test_publish_switch_refuse_fail_closed_and_retry(
    own_broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALHUB_ENFORCER_GROUP", f"policy-accept-{tmp_path.name}")
    settings: Settings = prepare_settings(load_settings(state_dir=tmp_path / "state"))
    bootstrap = own_broker.bootstrap_servers
    today = date.today()
    v1_dir = copy_policies(tmp_path / "v1")
    v2_dir = add_clear_field(copy_policies(tmp_path / "v2"), AGREEMENT, "address")
    v1 = publish_policy(settings, bootstrap, v1_dir, message="baseline", author="t", today=today)

    with (
        run_stack(settings, bootstrap, lambda _: None) as enforcer,
        Accounting(bootstrap, registry(), settings) as accounting,
    ):
        sender = Sender(bootstrap)
        try:
            first = set(sender.send(10))
            accounting.wait_for(first, lambda _: None, enforcer, timeout_s=120)

            # 1. Publish v2 while signals flow: no restart, the switch happens mid-stream.
            flowing: list[str] = []
            stop = threading.Event()

            def flow() -> None:
                while not stop.is_set():
                    flowing.extend(sender.send())
                    time.sleep(0.02)

            thread = threading.Thread(target=flow)
            thread.start()
            time.sleep(1.0)
            v2 = publish_policy(
                settings,
                bootstrap,
                v2_dir,
                message="gemeente sees address",
                author="t",
                today=today,
            )
            time.sleep(2.5)
            stop.set()
            thread.join()
            accounting.wait_for(set(flowing), lambda _: None, enforcer, timeout_s=120)
            rows = _audit_for(accounting, first | set(flowing))
            versions = [r["policy_version"] for r in rows]
            assert set(versions) == {v1.version, v2.version}
            switched_at = versions.index(v2.version)
            assert set(versions[switched_at:]) == {v2.version}, "no v1 decision after the switch"
            assert set(versions[:switched_at]) == {v1.version}
            for row in rows:
                assert ("address" in row["fields_clear"]) == (row["policy_version"] == v2.version)
            enforcer.check_alive()

            # 2. A syntax error or a failing test is refused; v2 stays in force.
            for breakage in (break_syntax, add_failing_test):
                bad = breakage(copy_policies(tmp_path / breakage.__name__))
                with pytest.raises(PolicyError, match="refused"):
                    publish_policy(settings, bootstrap, bad, message="bad", author="t", today=today)
            current = read_current_bundle(bootstrap)
            assert current is not None
            assert v2.version.encode() in current
            assert [e.version for e in PolicyStore.in_state_dir(settings.state_dir).history()] == [
                v1.version,
                v2.version,
            ]

            # 3. An undecidable version injected on the topic: deny, audit, park, deliver nothing.
            broken = bundle_from_dir(undecided_policy(copy_policies(tmp_path / "broken")))
            send_bundle(bootstrap, broken.stamped("injected", "attacker"))
            _wait_for_version(sender, accounting, broken.version, enforcer)
            parked_ids = set(sender.send(5))
            accounting.wait_for(parked_ids, lambda _: None, enforcer, timeout_s=120)
            errors = _audit_for(accounting, parked_ids)
            assert {r["outcome"] for r in errors} == {"error"}
            assert len(errors) == 5
            assert parked_ids <= {p["key"] for p in accounting.parked}

            # 4. After the fix, retry-parked delivers them; a second retry repeats nothing.
            publish_policy(settings, bootstrap, v2_dir, message="fix", author="t", today=today)
            _wait_for_version(sender, accounting, v2.version, enforcer)
            subs = by_signal_type(load_subscriptions(settings.subscriptions_file))
            state = RetryState.in_state_dir(settings.state_dir)
            policy = policy_in_force(settings, bootstrap)
            assert policy.version == v2.version
            report = retry_parked(bootstrap, registry(), subs, policy, state, today)
            assert parked_ids <= set(report.republished)
            assert report.still_failing == []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                accounting.read()
                allowed = {
                    r["signal_id"]
                    for r in _audit_for(accounting, parked_ids)
                    if r["outcome"] == "allow" and r["policy_version"] == v2.version
                }
                if allowed == parked_ids:
                    break
            assert allowed == parked_ids
            again = retry_parked(bootstrap, registry(), subs, policy, state, today)
            assert again.republished == []
            assert again.already_retried >= 5
        finally:
            sender.close()

        with ViewSchemaCatalog(bootstrap, registry()) as catalog:
            delivered = list(read_deliveries(bootstrap, "gemeente", catalog, dedupe=True))
    hub_ids = {delivery_id(sid, "gemeente"): sid for sid in parked_ids}  # envelope ids: per domain
    assert parked_ids <= {hub_ids.get(d.delivery_id) for d in delivered}, "retried are delivered"
    for delivery in delivered:
        has_address = "address" in delivery.record["payload"]
        assert has_address == (delivery.policy_version == v2.version)
    assert {d.policy_version for d in delivered} >= {v1.version, v2.version}
    assert broken.version not in {d.policy_version for d in delivered}
    assert POLICIES.exists()
