"""What one signal type's schema says: its payload fields, their metadata, its topic.

Built by :class:`~signalhub.schema.registry.SchemaRegistry` from ``schemas/<type>.avsc`` and read
by everything that treats fields by what they are (projection, pseudonymisation, the policy
input, the view schemas of :mod:`signalhub.schema.view`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signalhub.errors import SchemaError
from signalhub.types import JSON, AvroSchema
from signalhub.wire import signal_topic

__all__ = ["FieldSpec", "SignalSchema"]


@dataclass(frozen=True)
class FieldSpec:
    """One payload field and what the schema says about it."""

    name: str
    avro_type: JSON
    pii: str | None
    policy: bool
    optional: bool
    #: The kind of hub-made id the field holds (``"hub_id": "bundle_id"``), or None.
    hub_id: str | None = None


@dataclass(frozen=True, eq=False)
class SignalSchema:
    """The current schema of one signal type, parsed and fingerprinted."""

    signal_type: str
    version: int
    avro: AvroSchema
    fingerprint: bytes
    payload_fields: tuple[FieldSpec, ...]
    _by_name: dict[str, FieldSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.payload_fields})

    @property
    def topic(self) -> str:
        return signal_topic(self.signal_type)

    def field(self, name: str) -> FieldSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(
                f"{self.signal_type} has no payload field {name!r} — check the schema"
            ) from None

    def pii_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.payload_fields if f.pii is not None)
