"""Subscriptions: the shipped file loads, and a wrong entry is refused with its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalhub.config import load_settings
from signalhub.errors import ConfigError
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions, subscribers

SETTINGS = load_settings()
KNOWN_TYPES = SchemaRegistry.from_dir(SETTINGS.schemas_dir).signal_types()


def _entry(id_: str, subscriber: str, *types: str, **extra: str | bool) -> str:
    lines = [
        "[[subscription]]",
        f'id = "{id_}"',
        f'subscriber = "{subscriber}"',
        f"signal_types = {list(types or ('nuisance_report',))!r}".replace("'", '"'),
        'purpose = "public_order"',
        'legal_basis = "Gemeentewet art. 172"',
    ]
    for key, value in extra.items():
        lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}")
    return "\n".join(lines).replace("'", '"') + "\n\n"


def _file(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "subscriptions.toml"
    path.write_text("".join(entries), encoding="utf-8")
    return path


def test_the_shipped_subscriptions_load_and_name_only_known_types() -> None:
    loaded = load_subscriptions(SETTINGS.subscriptions_file, KNOWN_TYPES)
    assert loaded
    assert {t for s in loaded for t in s.signal_types} <= set(KNOWN_TYPES)
    assert "jeugdzorg" in subscribers(loaded)


def test_an_invalid_entry_is_refused_with_its_position_and_field(tmp_path: Path) -> None:
    bad = _entry("gemeente-b", "gemeente").replace('purpose = "public_order"\n', "")
    path = _file(tmp_path, _entry("gemeente-a", "gemeente"), bad)

    with pytest.raises(ConfigError, match=r"subscription #2: purpose"):
        load_subscriptions(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"channel": "email"}, "channel"),
        ({"id": "Not A Name"}, "id"),
        ({"unexpected": "x"}, "unexpected"),
    ],
    ids=["unknown-channel", "bad-id", "unknown-key"],
)
def test_a_malformed_value_names_the_field(
    tmp_path: Path, change: dict[str, str], expected: str
) -> None:
    entry = _entry("gemeente-a", "gemeente", **{k: v for k, v in change.items() if k != "id"})
    if "id" in change:
        entry = entry.replace('"gemeente-a"', f'"{change["id"]}"')
    with pytest.raises(ConfigError, match=rf"subscription #1: {expected}"):
        load_subscriptions(_file(tmp_path, entry))


def test_a_webhook_subscription_needs_a_url(tmp_path: Path) -> None:
    path = _file(tmp_path, _entry("reclassering-a", "reclassering", channel="webhook"))
    with pytest.raises(ConfigError, match="reclassering-a: channel webhook needs webhook_url"):
        load_subscriptions(path)


def test_a_subscriber_whose_topic_is_a_hub_topic_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, _entry("gemeente-a", "gemeente"), _entry("leak-reports", "blocked"))
    with pytest.raises(
        ConfigError, match=r"subscription #2: subscriber: .*'blocked' .* deliveries\.blocked"
    ):
        load_subscriptions(path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        _entry("same-id", "gemeente", "nuisance_report"),
        _entry("same-id", "politie", "drug_signal"),
    )
    with pytest.raises(ConfigError, match="'same-id' is used twice"):
        load_subscriptions(path)


def test_two_subscriptions_of_one_subscriber_for_one_type_are_refused(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        _entry("gemeente-a", "gemeente", "nuisance_report", "drug_signal"),
        _entry("gemeente-b", "gemeente", "debt_signal", "drug_signal"),
    )
    with pytest.raises(ConfigError, match="gemeente-a and gemeente-b both give gemeente"):
        load_subscriptions(path)


def test_an_inactive_overlapping_subscription_is_allowed_and_not_used(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        _entry("gemeente-a", "gemeente", "drug_signal"),
        _entry("gemeente-old", "gemeente", "drug_signal", active=False),
    )
    loaded = load_subscriptions(path)
    assert [s.id for s in loaded] == ["gemeente-a", "gemeente-old"]
    assert [s.id for s in by_signal_type(loaded)["drug_signal"]] == ["gemeente-a"]


def test_unknown_signal_types_are_refused_when_the_types_are_known(tmp_path: Path) -> None:
    path = _file(tmp_path, _entry("gemeente-a", "gemeente", "nuisance_report", "ufo_sighting"))
    assert load_subscriptions(path)  # without the registry's types nothing is checked
    with pytest.raises(ConfigError, match=r"gemeente-a names unknown signal type.*ufo_sighting"):
        load_subscriptions(path, KNOWN_TYPES)


def test_a_missing_or_unparsable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_subscriptions(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[subscription]\nid = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="fix the TOML syntax"):
        load_subscriptions(broken)


def test_grouping_by_type_keeps_file_order_and_subscribers_are_distinct(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        _entry("politie-a", "politie", "nuisance_report"),
        _entry("gemeente-a", "gemeente", "nuisance_report", "drug_signal"),
    )
    loaded = load_subscriptions(path)
    grouped = by_signal_type(loaded)
    assert [s.id for s in grouped["nuisance_report"]] == ["politie-a", "gemeente-a"]
    assert [s.id for s in grouped["drug_signal"]] == ["gemeente-a"]
    assert subscribers(loaded) == ["gemeente", "politie"]


def test_the_policy_sees_no_channel_details(tmp_path: Path) -> None:
    entry = _entry(
        "reclassering-a",
        "reclassering",
        channel="webhook",
        webhook_url="http://127.0.0.1:1/hook",
    )
    (subscription,) = load_subscriptions(_file(tmp_path, entry))
    assert subscription.policy_view() == {
        "id": "reclassering-a",
        "subscriber": "reclassering",
        "purpose": "public_order",
        "legal_basis": "Gemeentewet art. 172",
    }
    assert subscription.topic == "deliveries.reclassering"
