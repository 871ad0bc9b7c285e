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

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from signalhub.enforcer.projection import PseudonymSink
from signalhub.policy.decision import ENVELOPE_TIMES, TIME_GENERALISATIONS, Decision
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.types import Record

__all__ = [
    "ENVELOPE_FIELD_PREFIX",
    "EnvelopeTreatment",
    "domain_signal_id",
    "envelope_treatments",
    "project_envelope",
]

#: How an agreement names an envelope field in its ``fields`` and ``generalise``.
ENVELOPE_FIELD_PREFIX = "envelope."
_TIME_FIELDS = tuple(sorted(name.removeprefix(ENVELOPE_FIELD_PREFIX) for name in ENVELOPE_TIMES))


def domain_signal_id(pseudonymiser: Pseudonymiser, domain: str, signal_id: str) -> str:
    """The signal's id in ``domain``: UUID-shaped, keyed, unlinkable to other domains' ids."""
    return pseudonymiser.domain_id(domain, "signal_id", signal_id)


@dataclass(frozen=True)
class EnvelopeTreatment:
    """How one envelope field leaves: ``clear``, ``pseudonymised`` (``how``: a keyed id or
    reference of the domain) or ``generalised`` (``how``: ``day`` or ``hour``)."""

    treatment: str
    how: str = ""


#: The envelope fields every delivery carries unchanged: what kind of record, from whom.
_DESCRIPTIVE = ("signal_type", "source_agency", "schema_version")


@functools.lru_cache(maxsize=1024)
def envelope_treatments(decision: Decision) -> Mapping[str, EnvelopeTreatment]:
    """What ``decision`` does with each envelope field (the matrix shows the same answer);
    shared between calls, so read-only."""
    clear = {name.removeprefix(ENVELOPE_FIELD_PREFIX) for name in decision.fields}
    plan: dict[str, EnvelopeTreatment] = {name: EnvelopeTreatment("clear") for name in _DESCRIPTIVE}
    plan["signal_id"] = EnvelopeTreatment("pseudonymised", "signal id of the domain")
    plan["source_ref"] = (
        EnvelopeTreatment("clear")
        if "source_ref" in clear
        else EnvelopeTreatment("pseudonymised", "keyed reference of the domain")
    )
    for name in _TIME_FIELDS:
        method = decision.generalise.get(ENVELOPE_FIELD_PREFIX + name, TIME_GENERALISATIONS[0])
        plan[name] = (
            EnvelopeTreatment("clear")
            if name in clear
            else EnvelopeTreatment("generalised", method if method == "hour" else "day")
        )
    return plan


def project_envelope(
    envelope: Record,
    decision: Decision,
    pseudonymiser: Pseudonymiser,
    sink: PseudonymSink | None = None,
) -> Record:
    """The envelope as ``decision`` lets its subscriber see it (see the module docstring)."""
    domain = decision.domain
    plan = envelope_treatments(decision)
    projected = dict(envelope)
    projected["signal_id"] = domain_signal_id(pseudonymiser, domain, str(envelope["signal_id"]))
    if plan["source_ref"].treatment != "clear":
        reference = f"{envelope['source_agency']}:{envelope['source_ref']}"
        keyed = pseudonymiser.pseudonym(domain, "source_ref", reference)
        if sink is not None:
            sink.record(domain, "source_ref", reference, keyed)
        projected["source_ref"] = keyed
    for name in _TIME_FIELDS:
        if plan[name].treatment == "generalised":
            projected[name] = _cut(envelope[name], plan[name].how)
    return projected


def _cut(moment: datetime, method: str) -> datetime:
    """``moment`` (UTC) cut to the start of its hour (``hour``) or else its day."""
    moment = moment.astimezone(UTC)
    if method == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
