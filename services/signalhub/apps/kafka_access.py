"""What each Kafka principal may do, and which topics exist: the one declaration of both.

The production topology (docker-compose.yml's ``kafka-init``) runs a script generated from this
module (:mod:`signalhub.apps.kafka_script`, ``signalhub kafka init-script``), and tests compare
the committed script with it, so the ACLs follow the code instead of a hand-kept list.

Every principal is a Kafka user: one per role (``enforcer``, ``bundler``, ``audit-ingest``,
``webhooks``, ``http``), ``connector`` for agency connectors that publish directly, and one per
subscriber, which may read only its own ``deliveries.<subscriber>``. What a role is granted is
what the code it runs does, read from the same sources that code reads (schemas, connector
definitions, subscriptions, settings):

    consume a topic          Read + Describe on the topic
    commit or fetch offsets  Read on the group (also for assign() + committed()/commit())
    produce to a topic       Write + Describe on the topic
    create a topic           Create on the topic: some roles create their topics at start

Each use names what the code does with its grants (:attr:`Access.uses`), so a reader can check it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from signalhub.apps.roles import CLIENT_ROLES
from signalhub.config import Settings
from signalhub.subscriptions import Subscription, subscribers
from signalhub.wire import (
    AUDIT_TOPIC,
    BLOCKED_TOPIC,
    DLQ_TOPIC,
    PARKED_TOPIC,
    POLICIES_TOPIC,
    VIEW_SCHEMAS_TOPIC,
    deliveries_topic,
    failed_topic,
    signal_topic,
)

__all__ = [
    "CONNECTOR_PRINCIPAL",
    "Access",
    "Grant",
    "HubInputs",
    "Operation",
    "PatternType",
    "ResourceType",
    "TopicSpec",
    "hub_inputs",
    "role_access",
    "subscriber_group_prefix",
    "topology_topics",
    "webhook_group",
]

ResourceType = Literal["topic", "group"]
PatternType = Literal["literal", "prefixed"]
Operation = Literal["Read", "Write", "Describe", "Create"]

#: The Kafka user of agency connectors that publish signals without the hub's HTTP ingest.
CONNECTOR_PRINCIPAL = "connector"

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, order=True)
class Grant:
    """One allowed operation on one resource (an ACL entry, the principal aside)."""

    resource: ResourceType
    name: str
    operation: Operation
    pattern: PatternType = "literal"

    def describe(self) -> str:
        """``Read on topic audit`` / ``Read on group prefix gemeente.``."""
        where = f"{self.resource} prefix" if self.pattern == "prefixed" else self.resource
        return f"{self.operation} on {where} {self.name}"


@dataclass(frozen=True)
class Access:
    """Everything one principal is allowed, and why."""

    principal: str
    #: What the principal is: a role name, ``connector`` or ``subscriber``.
    kind: str
    #: What the code does, each with the grants it needs (for the docs).
    uses: tuple[tuple[str, frozenset[Grant]], ...]

    @property
    def grants(self) -> frozenset[Grant]:
        """Every grant of every use."""
        return frozenset[Grant]().union(*(grants for _, grants in self.uses))


@dataclass(frozen=True, order=True)
class TopicSpec:
    """A topic the topology creates."""

    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class HubInputs:
    """The files the declaration is derived from: what the roles read at start-up too."""

    signal_types: tuple[str, ...]
    #: Signal types the agency connector definitions can publish.
    connector_types: tuple[str, ...]
    #: The bundler's own output type (it reads every other signal type).
    alert_type: str


def hub_inputs(settings: Settings) -> HubInputs:
    """Signal types from ``schemas/`` and connector types from ``connectors/``."""
    from signalhub.bundling.core import ALERT_TYPE
    from signalhub.connector.definition import load_definitions
    from signalhub.schema.registry import SchemaRegistry

    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    definitions = load_definitions(settings.connectors_dir).values()
    published = {t for definition in definitions for t in definition.signal_types()}
    return HubInputs(tuple(registry.signal_types()), tuple(sorted(published)), ALERT_TYPE)


def webhook_group(subscriber: str) -> str:
    """The consumer group of a subscriber's webhook pusher, as its module spells it."""
    return f"signalhub-webhook-{subscriber}"


def subscriber_group_prefix(subscriber: str) -> str:
    """Groups a subscriber's own consumers may use: ``<subscriber>.<anything>``.

    Subscriber names hold no dot, so no subscriber's prefix covers another's groups.
    """
    return f"{subscriber}."


def role_access(
    settings: Settings, subscriptions: Sequence[Subscription], inputs: HubInputs | None = None
) -> dict[str, Access]:
    """Every principal's grants, keyed by principal: the roles, ``connector``, each subscriber."""
    inputs = hub_inputs(settings) if inputs is None else inputs
    signals = [signal_topic(t) for t in inputs.signal_types]
    names = subscribers(subscriptions)
    webhook = _webhook_subscribers(subscriptions)
    pull = sorted({s.subscriber for s in subscriptions if s.channel == "pull"})
    enforcer_sinks = [deliveries_topic(name) for name in names]
    enforcer_sinks += [AUDIT_TOPIC, DLQ_TOPIC, PARKED_TOPIC, VIEW_SCHEMAS_TOPIC, BLOCKED_TOPIC]
    webhook_groups = frozenset[Grant]().union(*(_group(webhook_group(n)) for n in webhook))
    roles = {
        "enforcer": [
            (
                "reads every signal topic in its consumer group (faust)",
                _consume(signals) | _group(settings.enforcer_group),
            ),
            (
                "writes deliveries, audit, dead letters, parked signals, view schemas and "
                "leak-guard reports",
                _produce(enforcer_sinks),
            ),
            ("creates every topic it reads and writes at start", _create(signals + enforcer_sinks)),
            (
                "follows the policies topic, which it creates at start",
                _consume([POLICIES_TOPIC]) | _create([POLICIES_TOPIC]),
            ),
        ],
        "bundler": [
            (
                "reads every signal topic but its own alerts; offsets in its group",
                _consume(signal_topic(t) for t in inputs.signal_types if t != inputs.alert_type)
                | _group(settings.bundler_group),
            ),
            ("publishes its casework alerts", _produce([signal_topic(inputs.alert_type)])),
            ("creates every signal topic at start", _create(signals)),
        ],
        "audit-ingest": [
            (
                "moves the audit topic into the store; offsets in the audit group",
                _consume([AUDIT_TOPIC]) | _group(settings.audit_group),
            ),
        ],
        "webhooks": [
            ("decodes deliveries with the view schemas", _consume([VIEW_SCHEMAS_TOPIC])),
            (
                "reads each webhook subscriber's deliveries in a group of its own",
                _consume(deliveries_topic(name) for name in webhook) | webhook_groups,
            ),
            (
                "keeps what it could not push on the subscriber's failed topic",
                _produce(failed_topic(name) for name in webhook),
            ),
        ],
        "http": [
            ("HTTP ingest and the console's DLQ replay publish signals", _produce(signals)),
            ("the console's lag and policy diff read the signal topics", _consume(signals)),
            ("the console's DLQ page reads the dead letters", _consume([DLQ_TOPIC])),
            ("the pull API decodes with the view schemas", _consume([VIEW_SCHEMAS_TOPIC])),
            (
                "the pull API reads each pull subscriber's deliveries",
                _consume(deliveries_topic(name) for name in pull),
            ),
            (
                "the console's audit search ingests into the store (audit group); readiness "
                "counts audit-ingest lag from that group's offsets",
                _consume([AUDIT_TOPIC]) | _group(settings.audit_group),
            ),
            (
                "the console's policy pages read, publish and roll back (creating the topic)",
                _consume([POLICIES_TOPIC]) | _produce([POLICIES_TOPIC]) | _create([POLICIES_TOPIC]),
            ),
        ],
    }
    if set(roles) != set(CLIENT_ROLES):  # a new role must be declared here before it runs
        raise RuntimeError(f"roles without a Kafka declaration: {set(CLIENT_ROLES) ^ set(roles)}")
    access = {role: _access(role, role, uses) for role, uses in roles.items()}
    connector_topics = [signal_topic(t) for t in inputs.connector_types]
    access[CONNECTOR_PRINCIPAL] = _access(
        CONNECTOR_PRINCIPAL,
        "connector",
        [
            (
                "publishes the signal types the connector definitions map to",
                _produce(connector_topics),
            )
        ],
    )
    for name in names:
        access[name] = _access(
            name,
            "subscriber",
            [
                (
                    "reads its own deliveries; offsets in groups named after it",
                    _consume([deliveries_topic(name)])
                    | _group(subscriber_group_prefix(name), "prefixed"),
                ),
            ],
        )
    return access


def topology_topics(
    settings: Settings, subscriptions: Sequence[Subscription], inputs: HubInputs | None = None
) -> list[TopicSpec]:
    """Every topic a principal uses, with partitions and retention, sorted by name.

    Partitions as the roles create them (:func:`signalhub.apps.roles.hub_topics`): the signal
    topics ``settings.partitions``, every other topic one. Retention as configured: raw signals
    (also on the DLQ and parked) ``signal_retention_days``; a subscriber's topics the longest
    period of its subscriptions (``signalhub retention run`` trims shorter ones per type); the
    audit topic ``audit_retention_days``. View schemas and policies are compacted: a delivery
    can be decoded, and the policy in force found, however old they are.
    """
    from signalhub.policy.store import TOPIC_CONFIG

    inputs = hub_inputs(settings) if inputs is None else inputs
    signal_ms = (("retention.ms", str(settings.signal_retention_days * _DAY_MS)),)
    specs = [
        TopicSpec(signal_topic(t), settings.partitions, signal_ms) for t in inputs.signal_types
    ]
    specs += [TopicSpec(DLQ_TOPIC, 1, signal_ms), TopicSpec(PARKED_TOPIC, 1, signal_ms)]
    specs.append(
        TopicSpec(AUDIT_TOPIC, 1, (("retention.ms", str(settings.audit_retention_days * _DAY_MS)),))
    )
    delivery_ms = (("retention.ms", str(settings.delivery_retention_days * _DAY_MS)),)
    specs.append(TopicSpec(BLOCKED_TOPIC, 1, delivery_ms))
    specs.append(TopicSpec(VIEW_SCHEMAS_TOPIC, 1, (("cleanup.policy", "compact"),)))
    specs.append(TopicSpec(POLICIES_TOPIC, 1, tuple(sorted(TOPIC_CONFIG.items()))))
    webhook = set(_webhook_subscribers(subscriptions))
    for name in subscribers(subscriptions):
        days = max(
            s.retention_days or settings.delivery_retention_days
            for s in subscriptions
            if s.subscriber == name
        )
        kept = (("retention.ms", str(days * _DAY_MS)),)
        specs.append(TopicSpec(deliveries_topic(name), 1, kept))
        if name in webhook:
            specs.append(TopicSpec(failed_topic(name), 1, kept))
    return sorted(specs)


# -- internals -----------------------------------------------------------------------------


def _webhook_subscribers(subscriptions: Iterable[Subscription]) -> list[str]:
    """Subscribers the webhooks role pushes to (as signalhub.delivery.webhook picks them)."""
    return sorted(
        {
            s.subscriber
            for s in subscriptions
            if s.active and s.channel == "webhook" and s.webhook_url
        }
    )


def _access(principal: str, kind: str, uses: Sequence[tuple[str, frozenset[Grant]]]) -> Access:
    return Access(principal, kind, tuple(uses))


def _consume(topics: Iterable[str]) -> frozenset[Grant]:
    return _topics(topics, ("Read", "Describe"))


def _produce(topics: Iterable[str]) -> frozenset[Grant]:
    return _topics(topics, ("Write", "Describe"))


def _create(topics: Iterable[str]) -> frozenset[Grant]:
    return _topics(topics, ("Create",))


def _topics(topics: Iterable[str], operations: Sequence[Operation]) -> frozenset[Grant]:
    return frozenset(Grant("topic", topic, op) for topic in topics for op in operations)


def _group(name: str, pattern: PatternType = "literal") -> frozenset[Grant]:
    return frozenset({Grant("group", name, "Read", pattern)})
