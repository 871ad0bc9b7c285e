"""signalhub: share public-safety signals between partners, only as far as law and covenant allow.

The public surface is what ``__all__`` names; every other module is internal to the hub.
"""

from __future__ import annotations

from signalhub.config import Settings, load_settings
from signalhub.errors import (
    BrokerError,
    ConfigError,
    ConnectorError,
    DecodeError,
    DeliveryError,
    KeyProviderError,
    PersonDataError,
    PolicyError,
    RecordError,
    ReidentificationError,
    SchemaError,
    SignalhubError,
    StateWriteError,
    StoreUnavailableError,
    UnknownSchemaError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "BrokerError",
    "ConfigError",
    "ConnectorError",
    "DecodeError",
    "DeliveryError",
    "KeyProviderError",
    "PersonDataError",
    "PolicyError",
    "RecordError",
    "ReidentificationError",
    "SchemaError",
    "Settings",
    "SignalhubError",
    "StateWriteError",
    "StoreUnavailableError",
    "UnknownSchemaError",
    "ValidationError",
    "__version__",
    "load_settings",
]
