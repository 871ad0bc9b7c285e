"""Subscriber view schemas: a signal schema projected to what one subscriber may receive.

A view keeps the envelope, adds a ``delivery`` record that says why and under which policy the
subscriber got it, and keeps only the payload fields the policy released: clear fields with their
original type and metadata, pseudonymised and generalised fields as ``["null", "string"]``. The
record is named ``nl.signalhub.view.<type>_<hash>``, the hash covering the signal schema's
fingerprint and the field sets, so two different projections never share a name and one
projection is always the same schema (subscribers can cache it by fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from signalhub.schema.signal import SignalSchema
from signalhub.types import JSON, AvroSchema

__all__ = ["DELIVERY_FIELDS", "VIEW_NAMESPACE", "project_view"]

VIEW_NAMESPACE = "nl.signalhub.view"
#: The fields of the ``delivery`` record, in order.
DELIVERY_FIELDS = (
    "delivery_id",
    "subscriber",
    "purpose",
    "legal_basis",
    "policy_version",
    "pseudonym_domain",
    "withheld",
    "generalised",
)


def project_view(
    signal: SignalSchema,
    clear: frozenset[str],
    pseudo: frozenset[str],
    generalised: Mapping[str, str] | None = None,
) -> AvroSchema:
    """The (unparsed) view schema of ``signal`` with these clear, pseudonymised and generalised
    (``{field: method}``) fields; generalised fields are ``["null", "string"]`` too."""
    names = {f.name for f in signal.payload_fields}
    pseudo = pseudo & names
    general = {k: v for k, v in (generalised or {}).items() if k in names and k not in pseudo}
    clear = (clear & names) - pseudo - set(general)
    identity: list[JSON] = [signal.fingerprint.hex(), sorted(clear), sorted(pseudo)]
    if general:  # only then: views without generalisation keep their names and fingerprints
        identity.append(sorted(general.items()))
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:12]
    name = f"{signal.signal_type}_{digest}"
    fields: list[JSON] = []
    payload = next(f for f in signal.avro["fields"] if f["name"] == "payload")["type"]
    for f in payload["fields"]:
        public = {k: v for k, v in f.items() if not k.startswith("__")}
        if f["name"] in pseudo:
            fields.append(
                {
                    "name": f["name"],
                    "type": ["null", "string"],
                    "default": None,
                    "pii": f.get("pii"),
                    "pseudonymised": True,
                    "doc": f"Pseudonym (in the subscriber's domain) of: {f.get('doc', f['name'])}",
                }
            )
        elif f["name"] in general:
            fields.append(
                {
                    "name": f["name"],
                    "type": ["null", "string"],
                    "default": None,
                    "pii": f.get("pii"),
                    "generalised": general[f["name"]],
                    "doc": f"Generalised ({general[f['name']]}) of: {f.get('doc', f['name'])}",
                }
            )
        elif f["name"] in clear:
            fields.append(public)
    envelope = next(f for f in signal.avro["fields"] if f["name"] == "envelope")
    return {
        "type": "record",
        "name": name,
        "namespace": VIEW_NAMESPACE,
        "doc": f"What one subscriber receives of a {signal.signal_type} signal.",
        "signal_type": signal.signal_type,
        "source_version": signal.version,
        "fields": [
            _delivered_envelope(envelope),
            {"name": "delivery", "type": _DELIVERY, "doc": "Why and under which policy."},
            {
                "name": "payload",
                "type": {"type": "record", "name": f"{name}_payload", "fields": fields},
                "doc": "The payload fields this subscriber may see, clear or pseudonymised.",
            },
        ],
    }


#: What the subscriber's envelope holds instead of the connector's (signalhub.enforcer.envelope).
_DELIVERED_ENVELOPE_DOCS = {
    "signal_id": "The signal's id in this subscriber's pseudonym domain: stable for the signal "
    "(de-duplicate on it), UUID-shaped, and different in every other domain.",
    "source_ref": "The agency's own record key as a keyed reference of this pseudonym domain "
    "(resolvable through the hub's re-identification procedure), or in clear where the "
    "agreement grants envelope.source_ref.",
    "observed_at": "When the agency observed the situation (UTC), cut to the day unless the "
    "agreement grants it to the hour or in clear.",
    "registered_at": "When the connector registered the signal (UTC), cut to the day unless the "
    "agreement grants it to the hour or in clear.",
}


def _delivered_envelope(envelope: Mapping[str, JSON]) -> JSON:
    """The signal's envelope field as subscribers receive it: same shape, its own docs."""
    record = envelope["type"]
    if not isinstance(record, dict):
        raise TypeError(f"the signal schema's envelope is not an inline record: {record!r}")
    fields = [
        {**f, "doc": _DELIVERED_ENVELOPE_DOCS.get(str(f["name"]), f.get("doc", ""))}
        for f in record["fields"]
    ]
    return {
        "name": "envelope",
        "type": {
            "type": "record",
            "name": "DeliveredEnvelope",
            "namespace": VIEW_NAMESPACE,
            "doc": "The signal's envelope, decided per subscriber so that no value in it links "
            "pseudonym domains.",
            "fields": fields,
        },
        "doc": envelope.get("doc", "Metadata of the signal."),
    }


def _str_field(name: str, doc: str) -> JSON:
    return {"name": name, "type": "string", "doc": doc}


_DELIVERY: AvroSchema = {
    "type": "record",
    "name": "Delivery",
    "namespace": VIEW_NAMESPACE,
    "doc": "How this delivery came about; stamped by the enforcer.",
    "fields": [
        _str_field(
            "delivery_id", "Stable id derived from signal id and subscriber (de-duplicate)."
        ),
        _str_field("subscriber", "The receiving agency."),
        _str_field("purpose", "The purpose of the subscription the delivery serves."),
        _str_field("legal_basis", "The legal basis the policy accepted for this delivery."),
        _str_field("policy_version", "Version (sha256) of the policy that allowed it."),
        _str_field("pseudonym_domain", "Domain in which the pseudonyms in this record are valid."),
        {
            "name": "withheld",
            "type": {"type": "array", "items": "string"},
            "doc": "Names of payload fields withheld from this subscriber.",
        },
        {
            "name": "generalised",
            "type": {"type": "map", "values": "string"},
            "default": {},
            "doc": "Payload fields delivered generalised, with the method: "
            '{"subject_birth_date": "age_band"} means that field holds an age band, not a date.',
        },
    ],
}
