"""``signalhub subscribe`` and ``signalhub subscriber token`` against the real broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from delivery_support import fresh_registry, nuisance_view, produce_deliveries, publish_view_schema
from signalhub.broker.embedded import EmbeddedBroker
from signalhub.config import Settings, load_settings
from signalhub.delivery.cli import subscribe, subscriber_group
from signalhub.delivery.secrets import SubscriberSecrets
from signalhub.errors import BrokerError
from signalhub.wire import VIEW_SCHEMAS_TOPIC

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path, subscriber: str, bootstrap: str = "") -> Settings:
    """A hub home with the real schemas and one subscription for ``subscriber``."""
    (tmp_path / "config").mkdir()
    (tmp_path / "schemas").symlink_to(load_settings().schemas_dir)
    (tmp_path / "config" / "subscriptions.toml").write_text(
        f"""
[[subscription]]
id = "{subscriber}-overlast"
subscriber = "{subscriber}"
signal_types = ["nuisance_report"]
purpose = "prevent_housing_nuisance"
legal_basis = "covenant"
channel = "pull"
"""
    )
    return load_settings(home=tmp_path, state_dir=tmp_path / "state", bootstrap_servers=bootstrap)


def test_subscribe_prints_json_lines(
    broker: EmbeddedBroker, name_factory: Callable[[str], str], tmp_path: Path
) -> None:
    subscriber = name_factory("cli")
    settings = _settings(tmp_path, subscriber, broker.bootstrap_servers)
    registry = fresh_registry()
    view = nuisance_view(registry)
    publish_view_schema(broker.bootstrap_servers, VIEW_SCHEMAS_TOPIC, view)
    broker.create_topics([f"deliveries.{subscriber}"])
    ids = produce_deliveries(broker.bootstrap_servers, subscriber, registry, view, 3)

    result = CliRunner().invoke(subscribe, [subscriber, "--json", "--idle-ms", "600"], obj=settings)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["delivery_id"] for line in lines] == ids

    summary = CliRunner().invoke(subscribe, [subscriber, "--idle-ms", "600"], obj=settings)
    assert summary.exit_code == 0, summary.output
    first = summary.stdout.splitlines()[0]
    assert ids[0] in first
    assert "severity=" in first
    assert "pseudonyms[subject_bsn=pn1." in first
    assert "withheld[subject_name,address,postcode,reporter_type,description]" in first


def test_subscriber_token_prints_a_token_that_authenticates(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "gemeente")
    result = CliRunner().invoke(subscriber_group, ["token", "gemeente"], obj=settings)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    store = SubscriberSecrets.from_settings(settings)
    assert store.subscriber_for_token(token) == "gemeente"
    assert token not in store.path.read_text()


def test_subscriber_token_refuses_an_unknown_subscriber(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "gemeente")
    result = CliRunner().invoke(subscriber_group, ["token", "nobody"], obj=settings)
    assert result.exit_code == 2
    assert "has no subscription" in result.output
    assert not SubscriberSecrets.from_settings(settings).path.exists()


def test_subscribe_without_a_hub_says_what_to_set(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "gemeente")  # embedded mode: no hub Kafka to read from
    result = CliRunner().invoke(subscribe, ["gemeente"], obj=settings)
    assert isinstance(result.exception, BrokerError)
    assert "no running hub found" in str(result.exception)
    assert "SIGNALHUB_BOOTSTRAP_SERVERS" in str(result.exception)
