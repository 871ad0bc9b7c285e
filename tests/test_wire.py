"""The wire contract: ids that never change, one canonical JSON, reserved names, one home.

The fixed ids below were computed by the code as released; a failure here means a subscriber,
the audit store or the bundler would see a known record as a new one.
"""

from __future__ import annotations

import ast
import hashlib
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import signalhub
from signalhub import wire

SIGNAL = "3f2b8c9e-1d4a-4e5f-8a6b-7c8d9e0f1a2b"
#: A raw agency record with every kind of value a source hands the mapper.
RICH_RECORD: dict[str, Any] = {
    "bsn": "123456782",
    "naam": "Jörg Ñúñez",
    "melding": 'overlast, "luid": ja',
    "aantal": 3,
    "bedrag": Decimal("12.50"),
    "gezien": datetime(2024, 5, 1, 13, 45, tzinfo=UTC),
    "datum": date(2024, 5, 1),
    "leeg": None,
    "vlag": True,
    "lijst": [1, "€", {"z": 1, "a": 2.5}],
    "z_first": "x",
}

# -- ids ---------------------------------------------------------------------------------------


def test_delivery_ids_are_the_released_values() -> None:
    assert wire.delivery_id(SIGNAL, "gemeente") == "e44585cd-c763-5978-a63f-8dc3f0a91195"
    assert wire.delivery_id("s-1", "zvh") == "80631742-4bb0-5c09-9012-aa017f73da59"


def test_decision_ids_are_the_released_values() -> None:
    decided = wire.decision_id(SIGNAL, "gemeente-openbare-orde", "sha256:0123456789abcdef")
    assert decided == "e695071c-686b-5468-b661-7b0bafe9a9f4"


def test_signal_ids_are_the_released_values() -> None:
    simple = wire.derive_signal_id("politie", "nuisance_report", {"a": "1"})
    assert simple == "d9ed554c-0141-49f2-8c3d-d94772573de9"
    rich = wire.derive_signal_id("gemeente-maastricht", "care_signal", RICH_RECORD)
    assert rich == "1ce5ccde-0654-48ba-b773-eec8b97b7b27"


def test_bundle_and_alert_ids_are_the_released_values() -> None:
    assert wire.bundle_id("pseudo:v1:abcdef0123456789") == "b28d8108-e765-a706-823b-9fcbced9dd2f"
    alert = wire.alert_signal_id("9b2e4d1c-0a7f-4b3e-8c5d-6e7f8a9b0c1d", 2)
    assert alert == "6ffbf7f0-76e7-918b-66a1-17f744475087"


@given(st.text(max_size=80), st.text(max_size=20))
def test_delivery_and_decision_ids_are_rfc_4122_version_5_uuids(signal_id: str, other: str) -> None:
    namespace = uuid.UUID("6f1d2c1e-5b7a-4c1e-9a53-5f1a0b2f7d10")
    expected = uuid.uuid5(namespace, f"delivery/{signal_id}/{other}")
    assert wire.delivery_id(signal_id, other) == str(expected)
    expected = uuid.uuid5(namespace, f"decision/{signal_id}/{other}/v1")
    assert wire.decision_id(signal_id, other, "v1") == str(expected)


def test_delivery_ids_differ_per_subscriber_and_per_signal() -> None:
    other = "5c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
    ids = {wire.delivery_id(s, sub) for s in (SIGNAL, other) for sub in ("gemeente", "politie")}
    assert len(ids) == 4
    assert wire.delivery_id(SIGNAL, "gemeente") != wire.decision_id(SIGNAL, "gemeente", "")


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
)
_raw_records = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        _leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=6,
    ),
    max_size=6,
)


@given(_raw_records)
def test_signal_ids_hash_the_record_as_first_released(raw: dict[str, Any]) -> None:
    released = json.dumps(raw, sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256(f"a\0t\0{released}".encode()).digest()
    assert wire.derive_signal_id("a", "t", raw) == str(uuid.UUID(bytes=digest[:16], version=4))


def test_a_signal_id_is_a_lower_case_version_4_uuid_that_follows_the_record() -> None:
    first = wire.derive_signal_id("politie", "nuisance_report", {"a": "1"})
    assert first[14] == "4"
    assert first == first.lower()
    assert first != wire.derive_signal_id("politie", "nuisance_report", {"a": "2"})
    assert first != wire.derive_signal_id("politie", "care_signal", {"a": "1"})
    reordered = dict(reversed(list(RICH_RECORD.items())))
    assert wire.derive_signal_id("g", "t", reordered) == wire.derive_signal_id(
        "g", "t", RICH_RECORD
    )


# -- canonical JSON ----------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@given(_json)
def test_canonical_json_round_trips_and_is_a_fixed_point(value: Any) -> None:
    text = wire.canonical_json(value)
    assert json.loads(text) == value
    assert wire.canonical_json(json.loads(text)) == text


@given(st.dictionaries(st.text(max_size=6), _json, max_size=6))
def test_canonical_json_ignores_key_order(document: dict[str, Any]) -> None:
    reordered = dict(reversed(list(document.items())))
    assert wire.canonical_json(reordered) == wire.canonical_json(document)


def test_canonical_json_is_compact_utf8_text_and_keeps_types_apart() -> None:
    assert wire.canonical_json({"b": [1, 2], "a": "x y"}) == '{"a":"x y","b":[1,2]}'
    assert wire.canonical_json({"naam": "Jörg €"}) == '{"naam":"Jörg €"}'
    assert len({wire.canonical_json(v) for v in (True, 1, 1.0)}) == 3


# -- topics and reserved names -----------------------------------------------------------------


def test_per_name_topics() -> None:
    assert wire.signal_topic("nuisance_report") == "signals.nuisance_report"
    assert wire.deliveries_topic("gemeente") == "deliveries.gemeente"
    assert wire.failed_topic("gemeente") == "deliveries.gemeente.failed"


@pytest.mark.parametrize(
    ("topic", "signal_type", "subscriber"),
    [
        ("signals.nuisance_report", "nuisance_report", None),
        ("signals.dlq", None, None),
        ("signals.parked", None, None),
        ("deliveries.gemeente", None, "gemeente"),
        ("deliveries.blocked", None, None),
        ("deliveries.gemeente.failed", None, None),
        ("audit", None, None),
    ],
    ids=["signal", "dlq", "parked", "delivery", "blocked", "failed", "audit"],
)
def test_a_topic_names_its_signal_type_or_subscriber(
    topic: str, signal_type: str | None, subscriber: str | None
) -> None:
    assert wire.signal_type_of(topic) == signal_type
    assert wire.subscriber_of(topic) == subscriber


def test_a_subscriber_whose_topic_is_a_hub_topic_is_reserved() -> None:
    assert wire.reserved_topic("blocked") == "deliveries.blocked"
    assert wire.reserved_topic("gemeente") is None
    for topic in wire.HUB_TOPICS:
        if topic.startswith(wire.DELIVERY_TOPIC_PREFIX):
            assert wire.reserved_topic(topic.removeprefix(wire.DELIVERY_TOPIC_PREFIX)) == topic


@given(st.from_regex(r"[a-z][a-z0-9_-]{1,20}", fullmatch=True))
def test_a_free_subscriber_name_owns_its_topics(name: str) -> None:
    assume(wire.reserved_topic(name) is None)
    own = {wire.deliveries_topic(name), wire.failed_topic(name)}
    assert own.isdisjoint(wire.HUB_TOPICS)
    assert wire.subscriber_of(wire.deliveries_topic(name)) == name
    assert wire.subscriber_of(wire.failed_topic(name)) is None
    assert {wire.signal_type_of(topic) for topic in own} == {None}


# -- one home: no other module spells a topic or a header ---------------------------------------

_HEADERS = frozenset(v for k, v in vars(wire).items() if k.endswith("_HEADER"))
#: Calls whose first argument is a topic.
_TOPIC_CALLS = frozenset({"Output", "TopicPartition", "publish", "send"})


def _named(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_topic_name(node: ast.AST) -> bool:
    return "topic" in _named(node).lower()


def _strings(node: ast.AST) -> list[ast.Constant]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _topic_values(node: ast.AST) -> list[ast.expr]:
    """The expressions ``node`` puts where a topic goes (so ``"audit"`` there is the topic)."""
    if isinstance(node, ast.Assign):
        return [node.value] if any(_is_topic_name(t) for t in node.targets) else []
    if isinstance(node, ast.AnnAssign):
        return [node.value] if node.value and _is_topic_name(node.target) else []
    if isinstance(node, ast.keyword):
        return [node.value] if "topic" in (node.arg or "") else []
    if isinstance(node, ast.arguments):
        params = [*node.posonlyargs, *node.args]
        pairs = [*zip(params[len(params) - len(node.defaults) :], node.defaults, strict=True)]
        pairs += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d]
        return [default for arg, default in pairs if "topic" in arg.arg]
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        return operands if any(_is_topic_name(o) for o in operands) else []
    if isinstance(node, ast.Call):
        name = _named(node.func)
        if "topic" in name.lower():
            return list(node.args)
        if name in _TOPIC_CALLS:
            return node.args[:1]
    return []


def _spells_wire(value: str) -> bool:
    return (
        value in _HEADERS
        or value.startswith(("signalhub.source.", "signalhub.failure_", "signalhub.failed_"))
        or ("." in value and value in wire.HUB_TOPICS)
        or value.startswith((wire.SIGNAL_TOPIC_PREFIX, wire.DELIVERY_TOPIC_PREFIX))
        or value.endswith(wire.FAILED_TOPIC_SUFFIX)
    )


def wire_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant that spells a hub topic or header; not docstrings."""
    tree = ast.parse(source)
    documentation = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    topic_positions = {
        id(c) for node in ast.walk(tree) for value in _topic_values(node) for c in _strings(value)
    }
    return sorted(
        (node.lineno, node.value)
        for node in _strings(tree)
        if id(node) not in documentation
        and (
            _spells_wire(node.value)
            or (id(node) in topic_positions and node.value in wire.HUB_TOPICS)
        )
    )


_PLANTED = '''
"""A module docstring may say signals.dlq, deliveries.<subscriber> and signalhub.reason."""
DLQ = "signals.dlq"
AUDIT_TOPIC = "audit"
def f(message, topic="policies"):
    """Reads signalhub.failed_at."""
    return header(message, "signalhub.reason")
producer.send("audit", b"x")
sinks = [f"deliveries.{name}"]
if message.topic == "schemas.views" or message.topic == "policies":
    pass
failed = f"{base}.failed"
create_topics(servers, ["audit"])
where = header(message, "signalhub.source.partition")
'''


def test_the_literal_check_finds_planted_topics_and_headers() -> None:
    assert wire_literals(_PLANTED) == [
        (3, "signals.dlq"),
        (4, "audit"),
        (5, "policies"),
        (7, "signalhub.reason"),
        (8, "audit"),
        (9, "deliveries."),
        (10, "policies"),
        (10, "schemas.views"),
        (12, ".failed"),
        (13, "audit"),
        (14, "signalhub.source.partition"),
    ]


def test_the_literal_check_leaves_other_uses_of_the_words_alone() -> None:
    harmless = '''
@click.group("audit")
def audit_group():
    """Query the audit topic; see signals.dlq."""
directory = home / "policies"
OPA_DOCUMENT = "signalhub.sharing.decisions"
logger.info("delivery failed: %s", topic)
'''
    assert wire_literals(harmless) == []


def test_no_module_but_wire_spells_a_hub_topic_or_header() -> None:
    package = Path(signalhub.__file__).parent
    found = {
        str(path.relative_to(package)): literals
        for path in sorted(package.rglob("*.py"))
        if path.name != "wire.py" or path.parent != package
        if (literals := wire_literals(path.read_text("utf-8")))
    }
    assert found == {}, "use the names in signalhub.wire instead"
