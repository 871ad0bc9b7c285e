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
from signalhub.policy.bundle import PolicyBundle, bundle_from_dir
from signalhub.policy.corpus import policy_corpus
from signalhub.policy.engine import EmbeddedPolicyEngine, PolicyEngine, check_policies
from signalhub.policy.rego_tests import run_rego_tests
from signalhub.policy.store import PolicyEvent, PolicyStore, read_current_bundle, send_bundle
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


def validate_policy(settings: Settings, bundle: PolicyBundle, today: date) -> list[str]:
    """Everything that stops ``bundle`` being published, one line each; empty means publishable.

    The bundle, not its directory, is validated: what passes is exactly what is sent.
    """
    problems = check_policies(bundle.files)
    if problems:
        return problems
    try:
        failed = [
            f"test failed: {name} ({why})"
            for name, ok, why in run_rego_tests(bundle.files)
            if not ok
        ]
        engine = EmbeddedPolicyEngine.from_bundle(bundle)
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
    bundle = bundle_from_dir(policies_dir)  # the one place this version is computed
    problems = validate_policy(settings, bundle, today)
    if problems:
        raise PolicyError(
            "policy refused, the version in force is unchanged:\n  "
            + "\n  ".join(problems)
            + "\n— fix the policy, run `signalhub policy check` and `signalhub policy test`"
        )
    stamped = bundle.stamped(message, author)
    send_bundle(bootstrap_servers, stamped)
    return PolicyStore.in_state_dir(settings.state_dir).record(stamped, "publish")


def rollback_policy(
    settings: Settings, bootstrap_servers: str, version: str, *, author: str, message: str = ""
) -> PolicyEvent:
    """Put an earlier published version back in force (recorded as a rollback)."""
    store = PolicyStore.in_state_dir(settings.state_dir)
    event = store.find(version)
    bundle = event.bundle().verified().stamped(message or f"rollback to {event.version}", author)
    # It loaded when it was published; prove it still does before putting it back in force.
    EmbeddedPolicyEngine.from_bundle(bundle).close()
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
        return engine_for_bundle(settings, PolicyBundle.from_bytes(raw).verified())
    latest = PolicyStore.in_state_dir(settings.state_dir).latest()
    if latest is not None and not bootstrap_servers:
        return engine_for_bundle(settings, latest.bundle().verified())
    return engine_from_settings(settings)
