"""The pull API on the real broker: bearer auth, isolation between subscribers, cursor paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from delivery_support import (
    fresh_registry,
    nuisance_view,
    produce_deliveries,
    publish_view_schema,
    serve,
)
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.pull_api import decode_cursor, encode_cursor, pull_app
from signalhub.delivery.secrets import SubscriberSecrets

pytestmark = pytest.mark.integration


@dataclass
class PullEnv:
    client: httpx.Client
    tokens: dict[str, str]
    ids: dict[str, list[str]]


@pytest.fixture
def pull_env(
    broker: EmbeddedBroker, name_factory: Callable[[str], str], tmp_path: Path
) -> Iterator[PullEnv]:
    """Two subscribers with deliveries on 2-partition topics, a token each, and the app."""
    views = name_factory("views")
    registry = fresh_registry()
    view = nuisance_view(registry)
    publish_view_schema(broker.bootstrap_servers, views, view)
    store = SubscriberSecrets(tmp_path / "subscriber-secrets.json")
    tokens, ids = {}, {}
    for label, count in (("a", 11), ("b", 4)):
        subscriber = name_factory(f"sub{label}")
        broker.create_topics([f"deliveries.{subscriber}"], partitions=2)
        ids[label] = produce_deliveries(broker.bootstrap_servers, subscriber, registry, view, count)
        tokens[label] = store.issue_token(subscriber)
    with (
        ViewSchemaCatalog(broker.bootstrap_servers, fresh_registry(), topic=views) as catalog,
        serve(pull_app(broker.bootstrap_servers, store, catalog, wait_ms=800)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield PullEnv(client, tokens, ids)


def _get(env: PullEnv, token: str | None, **params: str | int) -> tuple[int, dict[str, object]]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = env.client.get("/v1/deliveries", params=params, headers=headers)
    return response.status_code, response.json()


def _ids(body: dict[str, object]) -> list[str]:
    deliveries = body["deliveries"]
    assert isinstance(deliveries, list)
    return [d["delivery_id"] for d in deliveries]


def test_no_token_is_401(pull_env: PullEnv) -> None:
    status, body = _get(pull_env, None)
    assert status == 401
    assert "deliveries" not in body


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer x y", "token-without-scheme"], ids=repr
)
def test_malformed_authorization_is_401(pull_env: PullEnv, header: str) -> None:
    response = pull_env.client.get("/v1/deliveries", headers={"Authorization": header})
    assert response.status_code == 401


def test_wrong_token_is_401(pull_env: PullEnv) -> None:
    status, body = _get(pull_env, pull_env.tokens["a"][:-1] + "x")
    assert status == 401
    assert body == {"error": "invalid token"}


def test_each_token_reads_only_its_own_subscriber(pull_env: PullEnv) -> None:
    for label, other in (("a", "b"), ("b", "a")):
        status, body = _get(pull_env, pull_env.tokens[label], limit=500)
        assert status == 200
        got = set(_ids(body))
        assert got == set(pull_env.ids[label])
        assert not got & set(pull_env.ids[other])


def test_cursor_of_another_subscriber_still_reads_own_topic(pull_env: PullEnv) -> None:
    """A cursor only holds offsets: replaying B's cursor with A's token stays in A's topic."""
    _, b_page = _get(pull_env, pull_env.tokens["b"], limit=2)
    status, body = _get(pull_env, pull_env.tokens["a"], after=str(b_page["next"]), limit=500)
    assert status == 200
    assert _ids(body)
    assert set(_ids(body)) <= set(pull_env.ids["a"])


def test_paging_returns_every_delivery_once(pull_env: PullEnv) -> None:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        params: dict[str, str | int] = {"limit": 3}
        if cursor is not None:
            params["after"] = cursor
        status, body = _get(pull_env, pull_env.tokens["a"], **params)
        assert status == 200
        page = _ids(body)
        assert len(page) <= 3
        cursor = str(body["next"])
        if not page:
            break
        seen += page
    assert sorted(seen) == sorted(pull_env.ids["a"])
    assert len(seen) == len(set(seen))
    # the final cursor is stable: asking again yields nothing new
    assert cursor is not None
    status, body = _get(pull_env, pull_env.tokens["a"], after=cursor)
    assert (status, _ids(body)) == (200, [])
    assert body["next"] == cursor


@pytest.mark.parametrize(
    "params",
    [
        {"after": "not-a-cursor"},
        {"after": base64.urlsafe_b64encode(b'{"v":1,"p":{"0":-5}}').decode()},
        {"limit": 0},
        {"limit": 100000},
        {"limit": "ten"},
    ],
    ids=["garbage-cursor", "negative-offset", "limit-0", "limit-huge", "limit-text"],
)
def test_bad_parameters_are_400(pull_env: PullEnv, params: dict[str, str | int]) -> None:
    status, _ = _get(pull_env, pull_env.tokens["a"], **params)
    assert status == 400


def test_subscriber_without_pull_subscription_is_403(
    broker: EmbeddedBroker, tmp_path: Path, name_factory: Callable[[str], str]
) -> None:
    store = SubscriberSecrets(tmp_path / "s.json")
    token = store.issue_token("politie")
    with (
        ViewSchemaCatalog(
            broker.bootstrap_servers, fresh_registry(), topic=name_factory("v")
        ) as catalog,
        serve(
            pull_app(broker.bootstrap_servers, store, catalog, allowed_subscribers={"gemeente"})
        ) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        response = client.get("/v1/deliveries", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_cursor_round_trips() -> None:
    positions = {0: 5, 3: 17}
    cursor = encode_cursor(positions)
    assert decode_cursor(cursor) == positions
    assert json.loads(base64.urlsafe_b64decode(cursor + "=="))["v"] == 1
