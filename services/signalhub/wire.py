"""The wire contract: what the hub's records look like between processes.

Topic names, record header names, the ids other processes de-duplicate and join on, and the
canonical JSON that ids, hashes and memo keys are computed over all live here, so the contract
changes in one module only (a test checks that no other module spells a topic or a header).

Topics::

    signals.<type>                  raw signals from connectors (and the bundler's alerts)
    signals.dlq                     records the enforcer could not process, original bytes
    signals.parked                  signals whose policy could not be evaluated, original bytes
    deliveries.<subscriber>         one subscriber's deliveries
    deliveries.<subscriber>.failed  deliveries a webhook could not push, original bytes
    deliveries.blocked              leak-guard reports (never the delivery itself)
    audit                           one entry per signal with all its decision records
    schemas.views                   view schemas (key: fingerprint hex)
    policies                        published policy bundles (compacted)

A subscriber's own topics are named after it, so a subscriber name that would make one of them
equal to a hub topic (``blocked`` -> ``deliveries.blocked``) is refused: :func:`reserved_topic`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AUDIT_TOPIC",
    "BLOCKED_TOPIC",
    "DELIVERY_ID_HEADER",
    "DELIVERY_TOPIC_PREFIX",
    "DETAIL_HEADER",
    "DLQ_TOPIC",
    "EPOCH_TOPIC",
    "FAILED_AT_HEADER",
    "FAILED_TOPIC_SUFFIX",
    "FAILURE_ATTEMPTS_HEADER",
    "FAILURE_DETAIL_HEADER",
    "FAILURE_REASON_HEADER",
    "HUB_TOPICS",
    "PARKED_TOPIC",
    "POLICIES_TOPIC",
    "POLICY_VERSION_HEADER",
    "REASON_HEADER",
    "SIGNAL_TOPIC_PREFIX",
    "SIGNAL_TYPE_HEADER",
    "SOURCE_OFFSET_HEADER",
    "SOURCE_PARTITION_HEADER",
    "SOURCE_TOPIC_HEADER",
    "VIEW_SCHEMAS_TOPIC",
    "alert_signal_id",
    "bundle_id",
    "canonical_json",
    "decision_id",
    "deliveries_topic",
    "delivery_id",
    "derive_signal_id",
    "failed_topic",
    "header",
    "reserved_topic",
    "signal_topic",
    "signal_type_of",
    "subscriber_of",
]

# -- topics ------------------------------------------------------------------------------------

SIGNAL_TOPIC_PREFIX = "signals."
DELIVERY_TOPIC_PREFIX = "deliveries."
FAILED_TOPIC_SUFFIX = ".failed"

AUDIT_TOPIC = "audit"
DLQ_TOPIC = "signals.dlq"
PARKED_TOPIC = "signals.parked"
#: Leak-guard reports: JSON {delivery_id, signal_id, subscriber, reasons, ...}.
BLOCKED_TOPIC = "deliveries.blocked"
VIEW_SCHEMAS_TOPIC = "schemas.views"
POLICIES_TOPIC = "policies"
#: One record naming the broker's epoch: a broker that comes back without it lost its data.
EPOCH_TOPIC = "signalhub.epoch"

#: Every topic with a fixed name; no signal type or subscriber may take one of these.
HUB_TOPICS = frozenset(
    {
        AUDIT_TOPIC,
        DLQ_TOPIC,
        PARKED_TOPIC,
        BLOCKED_TOPIC,
        VIEW_SCHEMAS_TOPIC,
        POLICIES_TOPIC,
        EPOCH_TOPIC,
    }
)


def signal_topic(signal_type: str) -> str:
    """The topic connectors write signals of one type to (``signals.<type>``)."""
    return f"{SIGNAL_TOPIC_PREFIX}{signal_type}"


def deliveries_topic(subscriber: str) -> str:
    """The topic that holds one subscriber's deliveries (``deliveries.<subscriber>``)."""
    return f"{DELIVERY_TOPIC_PREFIX}{subscriber}"


def failed_topic(subscriber: str) -> str:
    """Where deliveries a webhook could not push are kept (``deliveries.<subscriber>.failed``)."""
    return f"{deliveries_topic(subscriber)}{FAILED_TOPIC_SUFFIX}"


def signal_type_of(topic: str) -> str | None:
    """The signal type a topic carries, or None when it is not a signal topic (the DLQ is not)."""
    if topic in HUB_TOPICS or not topic.startswith(SIGNAL_TOPIC_PREFIX):
        return None
    return topic.removeprefix(SIGNAL_TOPIC_PREFIX)


def subscriber_of(topic: str) -> str | None:
    """The subscriber whose deliveries a topic holds, or None for any other topic."""
    if topic in HUB_TOPICS or topic.endswith(FAILED_TOPIC_SUFFIX):
        return None
    if not topic.startswith(DELIVERY_TOPIC_PREFIX):
        return None
    return topic.removeprefix(DELIVERY_TOPIC_PREFIX)


def reserved_topic(subscriber: str) -> str | None:
    """The hub topic one of ``subscriber``'s own topics would be, or None when it is free.

    A subscriber named ``blocked`` would receive the leak guard's reports and have its
    deliveries mixed into them; its name is refused when the subscriptions load.
    """
    for topic in (deliveries_topic(subscriber), failed_topic(subscriber)):
        if topic in HUB_TOPICS:
            return topic
    return None


# -- headers -----------------------------------------------------------------------------------

#: On every delivery (and on leak-guard reports): what channels route and de-duplicate by.
DELIVERY_ID_HEADER = "signalhub.delivery_id"
SIGNAL_TYPE_HEADER = "signalhub.signal_type"
POLICY_VERSION_HEADER = "signalhub.policy_version"
#: On dead letters, parked signals and leak-guard reports: why and where it failed.
REASON_HEADER = "signalhub.reason"
DETAIL_HEADER = "signalhub.detail"
SOURCE_TOPIC_HEADER = "signalhub.source.topic"
SOURCE_PARTITION_HEADER = "signalhub.source.partition"
SOURCE_OFFSET_HEADER = "signalhub.source.offset"
FAILED_AT_HEADER = "signalhub.failed_at"
#: On a webhook's failed topic, beside ``FAILED_AT_HEADER``.
FAILURE_REASON_HEADER = "signalhub.failure_reason"
FAILURE_DETAIL_HEADER = "signalhub.failure_detail"
FAILURE_ATTEMPTS_HEADER = "signalhub.failure_attempts"


def header(record: Any, name: str) -> str | None:
    """A record header as text, or None when absent."""
    for key, value in record.headers or ():
        if key == name and value is not None:
            text: str = bytes(value).decode("utf-8", "replace")
            return text
    return None


# -- canonical JSON ----------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """The one canonical serialisation: sorted keys, no whitespace, non-ASCII kept as UTF-8 text.

    Everything that is hashed, compared or used as a key goes through here, so equal values
    always give equal bytes.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- ids ---------------------------------------------------------------------------------------
# Every id below is stored by other processes (subscribers, the audit store, the bundler's
# state) and compared later: its derivation must never change, or a resent record or a
# reprocessed signal would look new.

_DELIVERY_NAMESPACE = uuid.UUID("6f1d2c1e-5b7a-4c1e-9a53-5f1a0b2f7d10")
_NAMESPACE_BYTES = _DELIVERY_NAMESPACE.bytes


def delivery_id(signal_id: str, subscriber: str) -> str:
    """Stable id of the delivery of one signal to one subscriber, for de-duplication downstream."""
    return _uuid5(f"delivery/{signal_id}/{subscriber}")


def decision_id(signal_id: str, subscription_id: str, policy_version: str) -> str:
    """Stable id of one decision: reprocessing after a crash yields the same id."""
    return _uuid5(f"decision/{signal_id}/{subscription_id}/{policy_version}")


def derive_signal_id(agency: str, signal_type: str, raw: Mapping[str, Any]) -> str:
    """A version-4-shaped UUID that is the same every time the same agency record is read.

    Derived, not drawn at random, so a record read again after a restart or a resend keeps its
    id and the at-least-once pipeline can de-duplicate on it.
    """
    material = f"{agency}\0{signal_type}\0{_record_text(_jsonable(raw))}"
    digest = hashlib.sha256(material.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def bundle_id(subject_key: str) -> str:
    """Stable, UUID-shaped id of the bundle of one hub-internal pseudonym (one-way)."""
    return _sha256_uuid(f"signalhub/bundle/{subject_key}")


def alert_signal_id(the_bundle_id: str, revision: int) -> str:
    """The casework_alert's signal id: the same bundle and revision always give the same id."""
    return _sha256_uuid(f"signalhub/casework_alert/{the_bundle_id}/{revision}")


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(_DELIVERY_NAMESPACE, name))`` without building a UUID object.

    Several ids per signal on the enforcer's hot path; the UUID object and its formatting cost
    more than the SHA-1 itself.
    """
    # SHA-1 because RFC 4122 version 5 is defined with it; these are ids, not a security digest.
    sha1 = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False)
    digest = bytearray(sha1.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _sha256_uuid(text: str) -> str:
    """The first 16 bytes of SHA-256 as a UUID, version bits untouched (as first released)."""
    return str(uuid.UUID(bytes=hashlib.sha256(text.encode()).digest()[:16]))


def _jsonable(value: Any) -> Any:
    """``value`` with every non-JSON leaf (a date, a Decimal, ...) replaced by its ``str``.

    Exactly what ``json.dumps(default=str)`` does while encoding, done beforehand so the
    serialisation itself stays plain JSON.
    """
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


def _record_text(value: Any) -> str:
    """The text a signal id hashes: sorted keys, UTF-8 text, but ``", "`` and ``": "`` between.

    Not :func:`canonical_json`: signal ids were first derived over this spaced form, and a
    different text would give every resent agency record a new id (duplicate signals).
    """
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
