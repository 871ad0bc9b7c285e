"""Subscriptions: who asked to receive which signal types, for which purpose, through which channel.

A subscription is configuration (``config/subscriptions.toml``); whether it is *allowed* is the
policy's decision, made per signal. A subscription claims a purpose and a legal basis; the policy
checks both against the covenant agreements. A subscriber's name also names its topics, so a name
whose topic is one of the hub's own (``blocked`` -> ``deliveries.blocked``) is refused.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from signalhub.errors import ConfigError
from signalhub.wire import deliveries_topic, reserved_topic

__all__ = ["Subscription", "by_signal_type", "load_subscriptions", "subscribers"]

_NAME_PATTERN = r"^[a-z][a-z0-9_-]{1,62}$"


class Subscription(BaseModel):
    """One subscriber's standing request for signals of some types."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_NAME_PATTERN)
    subscriber: str = Field(pattern=_NAME_PATTERN)
    signal_types: tuple[str, ...] = Field(min_length=1)
    purpose: str = Field(min_length=1)
    legal_basis: str = Field(min_length=1)
    channel: Literal["kafka", "pull", "webhook"] = "kafka"
    webhook_url: str | None = None
    active: bool = True
    #: Days this subscription's deliveries are kept on its topic; unset = the hub default
    #: (``SIGNALHUB_DELIVERY_RETENTION_DAYS``). Applied by ``signalhub retention run``.
    retention_days: int | None = Field(default=None, ge=1)

    @field_validator("subscriber")
    @classmethod
    def _subscriber_has_its_own_topics(cls, subscriber: str) -> str:
        taken = reserved_topic(subscriber)
        if taken is not None:
            raise ValueError(
                f"subscriber name {subscriber!r} is reserved: its topic would be the hub's own "
                f"topic {taken} — choose another name"
            )
        return subscriber

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http(s) URL")
        return url

    @property
    def topic(self) -> str:
        """The Kafka topic that holds this subscriber's deliveries."""
        return deliveries_topic(self.subscriber)

    def policy_view(self) -> dict[str, str]:
        """What the policy sees of this subscription (no channel details, no secrets)."""
        return {
            "id": self.id,
            "subscriber": self.subscriber,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
        }


def load_subscriptions(path: Path, known_types: Iterable[str] | None = None) -> list[Subscription]:
    """Read and check the subscriptions file; fail with the offending entry named."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"subscriptions file {path} not found — create it or set SIGNALHUB_HOME"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc} — fix the TOML syntax") from exc
    entries = document.get("subscription", [])
    subscriptions: list[Subscription] = []
    for index, entry in enumerate(entries, start=1):
        try:
            subscription = Subscription.model_validate(entry)
        except ValidationError as exc:
            raise ConfigError(f"{path}: subscription #{index}: {_first_error(exc)}") from exc
        if subscription.channel == "webhook" and subscription.webhook_url is None:
            raise ConfigError(
                f"{path}: subscription {subscription.id}: channel webhook needs webhook_url"
            )
        subscriptions.append(subscription)
    _check_unique_ids(path, subscriptions)
    if known_types is not None:
        _check_types(path, subscriptions, set(known_types))
    return subscriptions


def by_signal_type(subscriptions: Iterable[Subscription]) -> Mapping[str, tuple[Subscription, ...]]:
    """Active subscriptions grouped by signal type, in file order (the enforcer's lookup)."""
    grouped: dict[str, list[Subscription]] = {}
    for subscription in subscriptions:
        if subscription.active:
            for signal_type in subscription.signal_types:
                grouped.setdefault(signal_type, []).append(subscription)
    return {signal_type: tuple(subs) for signal_type, subs in grouped.items()}


def subscribers(subscriptions: Iterable[Subscription]) -> list[str]:
    """Distinct subscriber names, sorted."""
    return sorted({subscription.subscriber for subscription in subscriptions})


def _check_unique_ids(path: Path, subscriptions: list[Subscription]) -> None:
    """Ids are unique, and a subscriber has at most one active subscription per signal type.

    The second rule keeps ``delivery_id = f(signal_id, subscriber)`` unambiguous: one signal
    reaches one subscriber at most once.
    """
    seen: set[str] = set()
    covered: dict[tuple[str, str], str] = {}
    for subscription in subscriptions:
        if subscription.id in seen:
            raise ConfigError(
                f"{path}: subscription id {subscription.id!r} is used twice — ids must be unique"
            )
        seen.add(subscription.id)
        if not subscription.active:
            continue
        for signal_type in subscription.signal_types:
            other = covered.setdefault((subscription.subscriber, signal_type), subscription.id)
            if other != subscription.id:
                raise ConfigError(
                    f"{path}: subscriptions {other} and {subscription.id} both give "
                    f"{subscription.subscriber} the type {signal_type} — merge them into one"
                )


def _check_types(path: Path, subscriptions: list[Subscription], known: set[str]) -> None:
    for subscription in subscriptions:
        unknown = sorted(set(subscription.signal_types) - known)
        if unknown:
            raise ConfigError(
                f"{path}: subscription {subscription.id} names unknown signal type(s) "
                f"{', '.join(unknown)} — known: {', '.join(sorted(known))}"
            )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    # A validator's own message says what to do; pydantic's "Value error, " prefix adds nothing.
    cause = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
    return f"{where}: {cause if cause is not None else error['msg']}"
