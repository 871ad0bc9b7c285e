"""Turn one agency record into one signal record, as its connector definition says.

The mapper is pure: it reads the raw record and the definition and returns the decoded signal
record (envelope + payload) without touching a broker or a file, so every agency's mapping is
tested on its sample data alone. What it refuses raises :class:`~signalhub.errors.ValidationError`
(a :class:`~signalhub.errors.RecordError`): the runner turns that into a reject and goes on.
Error messages name the column and what was expected, never the value, because the value may be
a BSN, a name or an address. Only code-table and value-list values (agency vocabulary) are quoted.

The signal id is derived from the agency, the signal type and the whole raw record
(:func:`signalhub.wire.derive_signal_id`), so reading the same record again gives the same id.

Why a column left empty keeps the schema default: a JSON record may simply omit a field
(``indicatoren`` of a case without indicators), and the schema says what that means. Only a
field map's own ``default`` replaces it. Why a JSON object or array is refused where one value is
expected: turned into text it would reach subscribers as ``"{'nested': True}"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from signalhub.connector.definition import ConnectorDefinition, FieldMap
from signalhub.errors import ConnectorError, ValidationError
from signalhub.schema.registry import SchemaRegistry, SignalSchema
from signalhub.types import Record
from signalhub.wire import derive_signal_id

if TYPE_CHECKING:  # only for a signature: the mapper itself never reads the settings
    from signalhub.config import Settings

__all__ = ["Clock", "Mapper", "ObservedWindow", "is_valid_bsn", "utc_now"]

Clock = Callable[[], datetime]

_MISSING: Any = object()
_TRUE = {"ja", "j", "yes", "y", "true", "waar", "1"}
_FALSE = {"nee", "n", "no", "false", "onwaar", "0"}
_POSTCODE = re.compile(r"^(\d{4})\s*([A-Za-z]{2})$")
_POSTCODE_AREA = re.compile(r"^([1-9][0-9]{3})(?:\s*[A-Za-z]{2})?$")


def utc_now() -> datetime:
    """The registration clock; a seam so tests can fix ``registered_at``."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ObservedWindow:
    """When an observation can plausibly have been made; a moment outside it is a reject.

    A year typed as 0001 or 2099, or a source system with a wrong clock, would otherwise put
    signals in every subscriber's history at a date nobody looks at.
    """

    #: Earliest accepted day (UTC), ``SIGNALHUB_OBSERVED_NOT_BEFORE``.
    not_before: date = date(1900, 1, 1)
    #: Seconds an observation may lie after its registration (clock skew), ``..._MAX_FUTURE_S``.
    max_future_s: int = 86400

    @classmethod
    def from_settings(cls, settings: Settings) -> ObservedWindow:
        """The window ``SIGNALHUB_OBSERVED_NOT_BEFORE`` and ``..._MAX_FUTURE_S`` set."""
        return cls(settings.observed_not_before, settings.observed_max_future_s)

    def problem(self, moment: datetime, now: datetime) -> str | None:
        """Why ``moment`` (aware) lies outside the window at ``now``, or None."""
        if moment < datetime.combine(self.not_before, time(), UTC):
            return f"lies before {self.not_before.isoformat()}"
        if moment > now + timedelta(seconds=self.max_future_s):
            return f"lies more than {self.max_future_s} s in the future"
        return None


def is_valid_bsn(bsn: str) -> bool:
    """The eleven test (11-proef) of a Dutch burgerservicenummer of nine digits."""
    if len(bsn) != 9 or not bsn.isdigit() or bsn == "000000000":
        return False
    total = sum(int(digit) * weight for digit, weight in zip(bsn[:8], range(9, 1, -1), strict=True))
    return (total - int(bsn[8])) % 11 == 0


class Mapper:
    """Maps raw records of one connector to signal records of the registry's schemas."""

    def __init__(
        self,
        definition: ConnectorDefinition,
        registry: SchemaRegistry,
        *,
        clock: Clock = utc_now,
        window: ObservedWindow | None = None,
    ) -> None:
        self.definition = definition
        self._registry = registry
        self._clock = clock
        self._window = window or ObservedWindow()
        try:
            self._zone = ZoneInfo(definition.observed_at.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConnectorError(
                f"connector {definition.name!r}: unknown time zone "
                f"{definition.observed_at.timezone!r} — use an IANA name like Europe/Amsterdam"
            ) from exc
        self._schemas = {t: self._checked_schema(t) for t in definition.signal_types()}
        self._fields = {
            t: frozenset(spec.name for spec in schema.payload_fields)
            for t, schema in self._schemas.items()
        }

    # -- definition checks, once at start-up -------------------------------------------------

    def _checked_schema(self, signal_type: str) -> SignalSchema:
        """The schema of a type the definition names; ConnectorError if the definition is wrong."""
        name = self.definition.name
        if signal_type not in self._registry.signal_types():
            raise ConnectorError(
                f"connector {name!r} maps to signal type {signal_type!r}, which has no schema — "
                f"fix {name}.toml or add schemas/{signal_type}.avsc"
            )
        schema = self._registry.signal(signal_type)
        known = {spec.name for spec in schema.payload_fields}
        specific = self.definition.types.get(signal_type)
        named = set(specific.fields) | set(specific.constants) if specific else set()
        if self.definition.dispatch is not None:
            for entry in self.definition.dispatch.codes.values():
                if entry.signal_type == signal_type:
                    named |= set(entry.constants)
        unknown = sorted(named - known)
        if unknown:
            raise ConnectorError(
                f"connector {name!r}: {signal_type} has no payload field(s) {unknown} — "
                f"fix [types.{signal_type}] or the code table in {name}.toml"
            )
        return schema

    # -- mapping -----------------------------------------------------------------------------

    def map(self, raw: Mapping[str, Any], position: str) -> tuple[SignalSchema, Record]:
        """The signal record for ``raw``; ValidationError says which column is wrong and why.

        ``position`` (file line, array index, SQL watermark) becomes ``source_ref`` when the
        definition has no ``key_column`` or the record leaves it empty.
        """
        signal_type, constants = self._choose_type(raw)
        schema = self._schemas[signal_type]
        payload = self._payload(schema, raw, constants)
        now = self._clock()
        envelope = {
            "signal_id": derive_signal_id(self.definition.agency, signal_type, raw),
            "signal_type": signal_type,
            "source_agency": self.definition.agency,
            "source_ref": self._source_ref(raw, position),
            "observed_at": self._observed_at(raw, now),
            "registered_at": now,
            "schema_version": schema.version,
        }
        return schema, {"envelope": envelope, "payload": payload}

    def _choose_type(self, raw: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        dispatch = self.definition.dispatch
        if dispatch is None:
            # The model validator guarantees a fixed type when there is no code table.
            return str(self.definition.signal_type), {}
        value = _lookup(raw, dispatch.column)
        if _is_empty(value):
            raise ValidationError(f"column {dispatch.column!r} is empty: no code to map")
        _refuse_structure(value, dispatch.column, "a code")
        code = str(value).strip().upper()
        entry = dispatch.codes.get(code)
        if entry is None:
            raise ValidationError(
                f"unknown {dispatch.column} {code!r}: no signal type is mapped to it — add it to "
                f"[dispatch.codes] in {self.definition.name}.toml or correct the record"
            )
        return entry.signal_type, entry.constants

    def _payload(
        self, schema: SignalSchema, raw: Mapping[str, Any], constants: Mapping[str, Any]
    ) -> Record:
        payload = _payload_defaults(schema)
        specific = self.definition.types.get(schema.signal_type)
        known = self._fields[schema.signal_type]
        maps = [(n, m) for n, m in self.definition.fields.items() if n in known]
        if specific is not None:  # common fields apply to the types that have them; these win
            maps += list(specific.fields.items())
        for name, field_map in maps:
            value = _convert(raw, field_map)
            if value is not _MISSING:  # empty and no default of its own: keep what is there
                payload[name] = value
        if specific is not None:
            payload.update(specific.constants)
        payload.update(constants)
        return payload

    def _source_ref(self, raw: Mapping[str, Any], position: str) -> str:
        column = self.definition.key_column
        if column is not None:
            value = _lookup(raw, column)
            if not _is_empty(value):
                _refuse_structure(value, column, "a record key")
                return str(value).strip()
        return position

    def _observed_at(self, raw: Mapping[str, Any], now: datetime) -> datetime:
        spec = self.definition.observed_at
        value = _lookup(raw, spec.column)
        if _is_empty(value):
            raise ValidationError(f"column {spec.column!r} is empty: when was this observed?")
        _refuse_structure(value, spec.column, "a date/time")
        moment = _parse_datetime(value, spec.formats)
        if moment is None:
            wanted = " or ".join([*spec.formats, "ISO 8601"])
            raise ValidationError(f"column {spec.column!r}: expected a date/time as {wanted}")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self._zone)
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:  # 01-01-0001 00:00 local lies before year 1 in UTC
            # Read as UTC (off by the zone's offset): still enough to say which bound it breaks.
            wall = moment.replace(tzinfo=UTC)
            problem: str | None = self._window.problem(wall, now) or "is out of range"
        else:
            problem = self._window.problem(moment, now)
        if problem is not None:
            raise ValidationError(
                f"column {spec.column!r}: the observation date {problem} — correct the date "
                "(or the source system's clock)"
            )
        return moment


def _payload_defaults(schema: SignalSchema) -> Record:
    """Every payload field at its schema default; required fields without one are left out."""
    payload_type = next(f["type"] for f in schema.avro["fields"] if f["name"] == "payload")
    defaults: Record = {}
    for field in payload_type["fields"]:
        if "default" in field:
            default = field["default"]
            defaults[field["name"]] = list(default) if isinstance(default, list) else default
    for spec in schema.payload_fields:
        if spec.optional:
            defaults.setdefault(spec.name, None)
    return defaults


def _lookup(raw: Mapping[str, Any], column: str) -> Any:
    """A column's value; a dotted path walks into nested JSON objects when no column matches."""
    if column in raw:
        return raw[column]
    value: Any = raw
    for part in column.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _is_empty(value: Any) -> bool:
    return value is _MISSING or value is None or (isinstance(value, str) and not value.strip())


def _refuse_structure(value: Any, column: str, expected: str) -> None:
    """ValidationError when a JSON object or array stands where one value belongs."""
    if isinstance(value, Mapping | list | tuple):
        kind = "an object" if isinstance(value, Mapping) else "an array"
        raise ValidationError(f"column {column!r}: expected {expected}, got {kind}")


def _convert(raw: Mapping[str, Any], spec: FieldMap) -> Any:
    """The field's value, or ``_MISSING`` when the column is empty and has no default."""
    value = _lookup(raw, spec.column)
    if _is_empty(value):
        return _MISSING if spec.default is None else spec.default
    if spec.type == "list":
        if not isinstance(value, list):
            _refuse_structure(value, spec.column, "a list")
            value = str(value).split(spec.separator)
        for item in value:
            _refuse_structure(item, spec.column, "a list of plain values")
        cleaned = [str(item).strip() for item in value if str(item).strip()]
        return [_map_value(item, spec) for item in cleaned]
    _refuse_structure(value, spec.column, _EXPECTED[spec.type])
    if spec.values is not None:
        return _map_value(value, spec)
    converter = _CONVERTERS[spec.type]
    try:
        return converter(value, spec)
    except (ValueError, TypeError, InvalidOperation, ArithmeticError) as exc:
        raise ValidationError(f"column {spec.column!r}: expected {_EXPECTED[spec.type]}") from exc


def _map_value(value: Any, spec: FieldMap) -> Any:
    if spec.values is None:
        return value
    key = str(value).strip().casefold()
    for agency_value, signal_value in spec.values.items():
        if agency_value.casefold() == key:
            return signal_value
    allowed = ", ".join(sorted(spec.values))
    raise ValidationError(
        f"column {spec.column!r}: {str(value).strip()[:40]!r} is not in its value list ({allowed})"
    )


def _to_str(value: Any, _spec: FieldMap) -> str:
    return str(value).strip()


def _to_int(value: Any, _spec: FieldMap) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        if value != int(value):
            raise ValueError("not whole")
        return int(value)
    return int(str(value).strip())


def _to_amount(value: Any, _spec: FieldMap) -> int:
    """Whole euros from 1234.5, "1234.50", "1.234,50" or "€ 1.234,50" (half up)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, int | float | Decimal):
        amount = Decimal(str(value))
    else:
        text = str(value).replace("€", "").replace(" ", "").strip()
        if "," in text:
            text = text.replace(".", "").replace(",", ".")
        amount = Decimal(text)
    if not amount.is_finite():
        raise ValueError("not a finite amount")
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _to_bool(value: Any, _spec: FieldMap) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a yes/no value")


def _to_date(value: Any, spec: FieldMap) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    moment = _parse_datetime(value, spec.formats)
    if moment is None:
        raise ValueError("not a date")
    return moment.date()


def _to_bsn(value: Any, _spec: FieldMap) -> str:
    digits = re.sub(r"[\s.\-]", "", str(value))
    if digits.isdigit() and len(digits) in (8, 9):
        digits = digits.zfill(9)
    if not is_valid_bsn(digits):
        raise ValueError("fails the eleven test")
    return digits


def _to_postcode(value: Any, _spec: FieldMap) -> str:
    match = _POSTCODE.match(str(value).strip())
    if match is None:
        raise ValueError("not a Dutch postcode")
    return f"{match.group(1)} {match.group(2).upper()}"


def _to_postcode_area(value: Any, _spec: FieldMap) -> str:
    match = _POSTCODE_AREA.match(str(value).strip())
    if match is None:
        raise ValueError("not a postcode area")
    return match.group(1)


def _parse_datetime(value: Any, formats: tuple[str, ...]) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    text = str(value).strip()
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


_CONVERTERS: dict[str, Callable[[Any, FieldMap], Any]] = {
    "str": _to_str,
    "int": _to_int,
    "amount": _to_amount,
    "bool": _to_bool,
    "date": _to_date,
    "bsn": _to_bsn,
    "postcode": _to_postcode,
    "postcode_area": _to_postcode_area,
}
_EXPECTED = {
    "str": "text",
    "int": "a whole number",
    "amount": "an amount in euros (e.g. 1234,56)",
    "bool": "ja/nee",
    "date": "a date",
    "bsn": "a BSN of nine digits that passes the eleven test",
    "postcode": "a Dutch postcode like 6211 AB",
    "postcode_area": "the four digits of a postcode, like 6211 (or a postcode like 6211 AB)",
    "list": "a list",
}
