"""Subscriber credentials: owner-only file, hashed tokens shown once, rotation, webhook secrets."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from signalhub.delivery.secrets import SubscriberSecrets, token_digest
from signalhub.errors import ConfigError


def test_token_is_stored_hashed_in_an_owner_only_file(tmp_path: Path) -> None:
    store = SubscriberSecrets(tmp_path / "state" / "subscriber-secrets.json")
    token = store.issue_token("gemeente")
    mode = stat.S_IMODE(store.path.stat().st_mode)
    assert mode == 0o600
    text = store.path.read_text()
    assert token not in text
    assert json.loads(text)["subscribers"]["gemeente"]["token_sha256"] == token_digest(token)
    assert len(token) >= 40


def test_token_identifies_its_subscriber_only(tmp_path: Path) -> None:
    store = SubscriberSecrets(tmp_path / "s.json")
    a, b = store.issue_token("gemeente"), store.issue_token("politie")
    assert store.subscriber_for_token(a) == "gemeente"
    assert store.subscriber_for_token(b) == "politie"
    assert store.subscriber_for_token(a + "x") is None
    assert store.subscriber_for_token("") is None
    assert store.subscriber_for_token(token_digest(a)) is None  # the stored digest is no token


def test_rotation_invalidates_the_old_token_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    server_view = SubscriberSecrets(path)
    old = SubscriberSecrets(path).issue_token("om")
    assert server_view.subscriber_for_token(old) == "om"
    new = SubscriberSecrets(path).issue_token("om")  # e.g. the CLI in another process
    assert server_view.subscriber_for_token(old) is None
    assert server_view.subscriber_for_token(new) == "om"


def test_webhook_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    store = SubscriberSecrets(tmp_path / "s.json")
    first = store.webhook_secret("zvh")
    assert store.webhook_secret("zvh") == first
    assert SubscriberSecrets(store.path).webhook_secret("zvh") == first
    rotated = store.rotate_webhook_secret("zvh")
    assert rotated != first
    assert store.webhook_secret("zvh") == rotated


def test_a_group_readable_file_is_refused(tmp_path: Path) -> None:
    store = SubscriberSecrets(tmp_path / "s.json")
    store.issue_token("gemeente")
    os.chmod(store.path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        SubscriberSecrets(store.path).subscriber_for_token("anything")
