"""Publish and roll back policy versions safely, and find the version in force.

``publish`` refuses a policy that does not check, whose Rego tests fail, or that cannot decide
every subscription on the attribute corpus (a policy that loads but leaves decisions undefined
would park every signal). Only then is the version sent to the ``policies`` topic — the act that
puts it in force on every enforcer — and recorded in the history. A refused publish changes
nothing: the old version stays in force.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from signalhub.config import Settings
from signalhub.errors import PolicyError
from signalhub.policy.corpus import policy_corpus
from signalhub.policy.engine import (
    EmbeddedPolicyEngine,
    PolicyEngine,
    check_policies,
    run_rego_tests,
)
from signalhub.policy.store import (
    PolicyBundle,
    PolicyEvent,
    PolicyStore,
    bundle_from_dir,
    materialised,
    read_current_bundle,
    send_bundle,
)
from signalhub.policy.switch import engine_for_bundle, engine_from_settings
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions

__all__ = [
    "policy_in_force",
    "publish_policy",
    "restore_policy_in_force",
    "rollback_policy",
    "validate_policy",
]


def validate_policy(settings: Settings, policies_dir: Path, today: date) -> list[str]:
    """Everything that stops a publish, one line each; empty means publishable."""
    problems = check_policies(policies_dir)
    if problems:
        return problems
    try:
        failed = [
            f"test failed: {name} ({why})"
            for name, ok, why in run_rego_tests(policies_dir)
            if not ok
        ]
        engine = EmbeddedPolicyEngine.from_dir(policies_dir)
    except PolicyError as exc:
        return [str(exc)]
    if failed:
        return failed
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    subscriptions = by_signal_type(
        load_subscriptions(settings.subscriptions_file, registry.signal_types())
    )
    undecided: dict[str, str] = {}
    try:
        for case in policy_corpus(registry, subscriptions, today):
            if case.signal_type in undecided:
                continue
            try:
                engine.decide(case.policy_input)
            except PolicyError as exc:
                undecided[case.signal_type] = str(exc)
    finally:
        engine.close()
    return [
        f"cannot decide {signal_type} signals (they would all be parked): {why}"
        for signal_type, why in sorted(undecided.items())
    ]


def publish_policy(
    settings: Settings,
    bootstrap_servers: str,
    policies_dir: Path,
    *,
    message: str,
    author: str,
    today: date,
) -> PolicyEvent:
    """Validate, put in force on the ``policies`` topic, record; :class:`PolicyError` if refused."""
    if not message.strip():
        raise PolicyError("a publish needs a message (-m) saying what changed and why")
    problems = validate_policy(settings, policies_dir, today)
    if problems:
        raise PolicyError(
            "policy refused, the version in force is unchanged:\n  "
            + "\n  ".join(problems)
            + "\n— fix the policy, run `signalhub policy check` and `signalhub policy test`"
        )
    bundle = bundle_from_dir(policies_dir).stamped(message, author)
    send_bundle(bootstrap_servers, bundle)
    return PolicyStore.in_state_dir(settings.state_dir).record(bundle, "publish")


def rollback_policy(
    settings: Settings, bootstrap_servers: str, version: str, *, author: str, message: str = ""
) -> PolicyEvent:
    """Put an earlier published version back in force (recorded as a rollback)."""
    store = PolicyStore.in_state_dir(settings.state_dir)
    event = store.find(version)
    bundle = event.bundle().stamped(message or f"rollback to {event.version}", author)
    with materialised(bundle) as root:  # it loaded when published; prove it still does
        EmbeddedPolicyEngine.from_dir(root).close()
    send_bundle(bootstrap_servers, bundle)
    return store.record(bundle, "rollback")


def restore_policy_in_force(settings: Settings, bootstrap_servers: str) -> str | None:
    """Put the last recorded version back on an empty ``policies`` topic; its version, or None.

    An embedded broker keeps nothing across a restart: without this, a hub started again would
    run the files in ``policies/`` while the history says a published version is in force.
    """
    if read_current_bundle(bootstrap_servers) is not None:
        return None
    latest = PolicyStore.in_state_dir(settings.state_dir).latest()
    if latest is None:
        return None
    send_bundle(bootstrap_servers, latest.bundle())
    return latest.version


def policy_in_force(settings: Settings, bootstrap_servers: str | None) -> PolicyEngine:
    """The engine of the version in force: the topic's, else the last recorded, else the files."""
    raw = read_current_bundle(bootstrap_servers) if bootstrap_servers else None
    if raw is not None:
        return engine_for_bundle(settings, PolicyBundle.from_bytes(raw))
    latest = PolicyStore.in_state_dir(settings.state_dir).latest()
    if latest is not None and not bootstrap_servers:
        return engine_for_bundle(settings, latest.bundle())
    return engine_from_settings(settings)
