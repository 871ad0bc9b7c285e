"""Shared fixtures: one embedded broker per test session, and unique names on it.

Tests that kill or restart a broker start their own; the session broker is never restarted.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator

import pytest

from signalhub.broker.embedded import EmbeddedBroker

_counter = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}-{next(_counter)}"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The running embedded tansu broker (``.bootstrap_servers`` is ``"127.0.0.1:PORT"``)."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def name_factory() -> Callable[[str], str]:
    """``name_factory("prefix")`` -> a name no other test uses (topics, groups, ids)."""
    return _unique


@pytest.fixture
def topic_factory(broker: EmbeddedBroker) -> Callable[..., str]:
    """``topic_factory(prefix="t", partitions=1)`` -> name of a new, empty topic on ``broker``."""

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = _unique(prefix)
        broker.create_topics([name], partitions=partitions)
        return name

    return make
