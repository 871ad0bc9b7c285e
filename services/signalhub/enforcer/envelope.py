"""The envelope a subscriber receives: decided like the payload, so nothing in it links domains.

The envelope the connector wrote carries values that are the same in every delivery of a signal:
the hub-wide ``signal_id``, the agency's own ``source_ref`` (a police registration number, a
case number) and millisecond timestamps. Copied verbatim, any of them lets two subscribers in
different pseudonym domains join their deliveries, and with them their pseudonyms. So per
delivery:

* ``signal_id`` becomes an id of the subscriber's pseudonym domain: stable (a subscriber can
  still de-duplicate), UUID-shaped, and different in every other domain;
* ``source_ref`` leaves in clear only when the decision lists ``envelope.source_ref`` in its
  fields; otherwise it becomes a keyed reference of the domain (a pseudonym of kind
  ``source_ref``), kept in the re-identification vault so the agency can resolve it through the
  hub;
* ``observed_at`` and ``registered_at`` leave to the millisecond only when the decision lists
  them (``envelope.observed_at``) in its fields; the decision may generalise them to the
  ``hour``; by default they are cut to the ``day`` (UTC). When in doubt, disclose less.

``signal_type``, ``source_agency`` and ``schema_version`` say what kind of record this is and
from whom, for every signal of that kind alike; they pass unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

from signalhub.enforcer.projection import PseudonymSink
from signalhub.policy.decision import Decision
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.types import Record

__all__ = [
    "ENVELOPE_FIELD_PREFIX",
    "TIME_GENERALISATIONS",
    "domain_signal_id",
    "project_envelope",
]

#: How an agreement names an envelope field in its ``fields`` and ``generalise``.
ENVELOPE_FIELD_PREFIX = "envelope."
#: What an envelope timestamp may be generalised to; the first is the default.
TIME_GENERALISATIONS = ("day", "hour")
_TIME_FIELDS = ("observed_at", "registered_at")


def domain_signal_id(pseudonymiser: Pseudonymiser, domain: str, signal_id: str) -> str:
    """The signal's id in ``domain``: UUID-shaped, keyed, unlinkable to other domains' ids."""
    return pseudonymiser.domain_id(domain, "signal_id", signal_id)


def project_envelope(
    envelope: Record,
    decision: Decision,
    pseudonymiser: Pseudonymiser,
    sink: PseudonymSink | None = None,
) -> Record:
    """The envelope as ``decision`` lets its subscriber see it (see the module docstring)."""
    domain = decision.domain
    clear = {name.removeprefix(ENVELOPE_FIELD_PREFIX) for name in decision.fields}
    projected = dict(envelope)
    projected["signal_id"] = domain_signal_id(pseudonymiser, domain, str(envelope["signal_id"]))
    if "source_ref" not in clear:
        reference = f"{envelope['source_agency']}:{envelope['source_ref']}"
        keyed = pseudonymiser.pseudonym(domain, "source_ref", reference)
        if sink is not None:
            sink.record(domain, "source_ref", reference, keyed)
        projected["source_ref"] = keyed
    for name in _TIME_FIELDS:
        if name in clear:
            continue
        method = decision.generalise.get(ENVELOPE_FIELD_PREFIX + name, TIME_GENERALISATIONS[0])
        projected[name] = _cut(envelope[name], method)
    return projected


def _cut(moment: datetime, method: str) -> datetime:
    """``moment`` (UTC) cut to the start of its hour or day; an unknown method cuts to the day."""
    moment = moment.astimezone(UTC)
    if method == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
