"""The one exception tree of signalhub.

Every error the hub raises on purpose derives from :class:`SignalhubError`; third-party errors are
wrapped with ``raise ... from exc`` so that callers need to catch only this tree. Messages say
what happened and what to do next, and never contain a clear identifier or a key.

    SignalhubError                  root; the CLI prints it as "Error: ..." and exits non-zero
    ├── ConfigError                 a setting is missing or invalid (names the setting)
    ├── BrokerError                 the embedded broker cannot start, or Kafka is unreachable
    ├── StoreUnavailableError       a database the hub writes cannot be reached now (retry)
    │   └── StateWriteError         a state file (vault, bundler state) cannot be written: disk
    │                               full, read-only, I/O error; the role exits to be restarted
    ├── SchemaError                 a schema file is invalid, or a change is incompatible
    │   └── UnknownSchemaError      bytes carry a fingerprint / type the registry does not know
    ├── RecordError                 one record cannot be processed (goes to rejects or the DLQ)
    │   ├── DecodeError             bytes are not a framed Avro record of a known schema
    │   └── ValidationError         a record does not conform to its signal schema
    │       └── PersonDataError     a report from the public carries a person identifier
    ├── PolicyError                 a policy cannot be loaded or evaluated (fail closed: deny)
    ├── KeyProviderError            pseudonym keys are missing, unreadable or too widely readable
    ├── ReidentificationError       a re-identification step is not allowed (audited; says why)
    ├── ConnectorError              a connector definition or source is invalid
    └── DeliveryError               a delivery channel failed after its retries
"""

from __future__ import annotations

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
    "SignalhubError",
    "StateWriteError",
    "StoreUnavailableError",
    "UnknownSchemaError",
    "ValidationError",
]


class SignalhubError(Exception):
    """Root of every error signalhub raises on purpose."""


class ConfigError(SignalhubError):
    """A setting is missing or invalid."""


class BrokerError(SignalhubError):
    """The embedded broker cannot start or Kafka cannot be reached."""


class StoreUnavailableError(SignalhubError):
    """A database the hub writes (the audit store) cannot be reached or written right now.

    Transient by nature (PostgreSQL restarting, SQLite locked, a disk full): the caller retries
    with backoff or exits so that its supervisor restarts it; nothing it had read is lost.
    """


class StateWriteError(StoreUnavailableError):
    """A state file under the state directory cannot be written (disk full, read-only, I/O error).

    The hub's fault, never the record's: nothing is dead-lettered; the role exits with
    :attr:`exit_code` before it commits, and the records are processed again after its restart.
    """

    #: ``EX_IOERR`` of sysexits.h: the role exits with it so its supervisor can tell why.
    exit_code: int = 74


class SchemaError(SignalhubError):
    """A schema is invalid, or a change to it is incompatible."""


class UnknownSchemaError(SchemaError):
    """Bytes name a schema (fingerprint or signal type) that the registry does not hold."""


class RecordError(SignalhubError):
    """One record cannot be processed; it goes to rejects (connector) or the DLQ (enforcer)."""

    #: Short machine-readable reason code, used as the DLQ/reject reason and a metric label.
    code: str = "record_error"


class DecodeError(RecordError):
    """Bytes are not a framed Avro record of a known schema."""

    code = "undecodable"


class ValidationError(RecordError):
    """A record does not conform to its signal schema."""

    code = "invalid"


class PersonDataError(ValidationError):
    """A report from the public (an ``anonymous`` connector) carries a person identifier: a
    field naming a person or the reporter, or a BSN, phone number or e-mail address where a
    place belongs."""

    code = "person_data"


class PolicyError(SignalhubError):
    """A policy cannot be loaded or evaluated; the decision fails closed (deny)."""


class KeyProviderError(SignalhubError):
    """Pseudonym keys are missing, unreadable, or readable by others than the owner."""


class ReidentificationError(SignalhubError):
    """A re-identification request, approval or reveal is not allowed; the refusal is audited."""


class ConnectorError(SignalhubError):
    """A connector definition or its source is invalid."""


class DeliveryError(SignalhubError):
    """A delivery channel failed after its retries."""
