"""Check deliveries against the who-sees-what matrix: every delivered field is predicted, in the
form it arrives in, and nothing the matrix predicts withheld arrives."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from signalhub.apps.publishers import publishing_agencies
from signalhub.config import load_settings
from signalhub.policy.corpus import AGE_BANDS
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.policy.matrix import ANY_SOURCE, MatrixRow, policy_matrix
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import by_signal_type, load_subscriptions

__all__ = ["assert_matrix_predicts"]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FORMS: Mapping[str, re.Pattern[str]] = {
    "age_band": re.compile("|".join(re.escape(band) for band in AGE_BANDS)),
    "postcode_area": re.compile(r"[1-9][0-9]{3}"),
    "neighbourhood": re.compile(r"BU[0-9]{8}"),
}


def assert_matrix_predicts(
    delivered: Mapping[str, Sequence[Mapping[str, Any]]], today: date | None = None
) -> int:
    """Check every delivery (``{subscriber: [demo --out rows]}``) against the shipped policy's
    matrix; the number of fields checked."""
    settings = load_settings(bootstrap_servers="")
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    subscriptions = load_subscriptions(settings.subscriptions_file, registry.signal_types())
    engine = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
    try:
        rows = policy_matrix(
            registry,
            by_signal_type(subscriptions),
            engine,
            today or datetime.now(UTC).date(),
            sources=publishing_agencies(settings.connectors_dir),
        )
    finally:
        engine.close()
    cells = {(r.subscription, r.signal_type, r.source_agency, r.field): r for r in rows}
    ids = {
        (sub.subscriber, sub.purpose, signal_type): sub.id
        for sub in subscriptions
        for signal_type in sub.signal_types
    }
    checked = 0
    for subscriber, deliveries in delivered.items():
        for row in deliveries:
            purpose = row["record"]["delivery"]["purpose"]
            sub_id = ids[(subscriber, purpose, row["signal_type"])]
            checked += _check_delivery(cells, registry, sub_id, row["signal_type"], row["record"])
    return checked


def _check_delivery(
    cells: Mapping[tuple[str, str, str, str], MatrixRow],
    registry: SchemaRegistry,
    sub_id: str,
    signal_type: str,
    record: Mapping[str, Any],
) -> int:
    envelope, delivery, payload = record["envelope"], record["delivery"], record["payload"]
    source = envelope["source_agency"]

    def cell(name: str) -> MatrixRow:
        found = cells.get((sub_id, signal_type, source, name)) or cells.get(
            (sub_id, signal_type, ANY_SOURCE, name)
        )
        assert found is not None, f"{sub_id} {signal_type} {name}: not in the matrix"
        return found

    checked = 0
    schema = registry.signal(signal_type)
    for spec in schema.payload_fields:
        predicted = cell(spec.name)
        value = payload.get(spec.name)
        where = f"{sub_id} {signal_type} from {source}: {spec.name}"
        if predicted.treatment == "withheld":
            assert spec.name not in payload, f"{where} predicted withheld, delivered"
            continue
        checked += 1
        assert value is None or _in_form(predicted, value, delivery), (
            f"{where} predicted {predicted.treatment} ({predicted.how}), got {value!r}"
        )
    assert set(payload) <= {spec.name for spec in schema.payload_fields}
    for name, value in envelope.items():
        predicted = cell("envelope." + name)
        checked += 1
        assert _in_form(predicted, value, delivery), (
            f"{sub_id} envelope.{name} predicted {predicted.treatment}, got {value!r}"
        )
    return checked


def _in_form(predicted: MatrixRow, value: Any, delivery: Mapping[str, Any]) -> bool:
    """Whether ``value`` has the form the predicted treatment gives."""
    generalised = delivery.get("generalised") or {}
    field = predicted.field
    if field.startswith("envelope."):
        return _envelope_in_form(predicted, value)
    if predicted.how == "id of the domain":  # a hub id (bundle_id): the domain's own UUID
        return isinstance(value, str) and _UUID.fullmatch(value) is not None
    if predicted.treatment == "pseudonymised":
        return isinstance(value, str) and value.startswith("pn1.")
    if predicted.treatment == "generalised":
        form = _FORMS[generalised.get(field, "")] if field in generalised else None
        return (
            form is not None
            and generalised[field] in predicted.how.split(" | ")
            and isinstance(value, str)
            and form.fullmatch(value) is not None
        )
    return field not in generalised


def _envelope_in_form(predicted: MatrixRow, value: Any) -> bool:
    if predicted.field == "envelope.signal_id":
        return isinstance(value, str) and _UUID.fullmatch(value) is not None
    if predicted.treatment == "pseudonymised":
        return isinstance(value, str) and value.startswith("pn1.")
    if predicted.treatment == "generalised":
        moment = datetime.fromisoformat(value)
        cut = moment.replace(minute=0, second=0, microsecond=0)
        if predicted.how == "day":
            cut = cut.replace(hour=0)
        return moment == cut
    return True
