"""Type aliases shared across the package."""

from __future__ import annotations

from typing import Any, TypeAlias

#: A JSON-compatible value as Avro records decode to and Rego inputs are built from.
JSON: TypeAlias = Any
#: A decoded signal or view record: field name to value.
Record: TypeAlias = dict[str, Any]
#: An Avro schema as parsed JSON (a dict for records).
AvroSchema: TypeAlias = dict[str, Any]
#: Name of a signal type, e.g. ``"nuisance_report"``; its topic is ``signals.<type>``.
SignalType: TypeAlias = str
#: Name of a subscriber, e.g. ``"woningcorporatie"``; its topic is ``deliveries.<subscriber>``.
SubscriberName: TypeAlias = str
