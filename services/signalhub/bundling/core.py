"""The bundler's core: raw signals in, bundle state and casework_alert revisions out.

Per batch, in one SQLite transaction: decode each signal, remember it (once per ``signal_id``),
add it to the bundles of the person and address it names, then ask the policy about every bundle
the batch touched. A bundle that fires gets its first alert (revision 1); a bundle that already
has an alert and has grown since gets the next revision. Alerts go into the store's outbox; the
edge (:mod:`signalhub.bundling.process`) publishes them and commits offsets after the transaction.

Error policy: a record that cannot be decoded is skipped and counted (the enforcer dead-letters
the same record from the same topic); a policy error raises, so the edge crashes before it
commits and the batch is processed again after a restart (fail closed, nothing lost).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from signalhub.bundling.rules import BundlingPolicy, RuleDecision
from signalhub.bundling.store import Alert, BundleStore, Contribution
from signalhub.bundling.subjects import Subject, epoch_ms, subjects_of
from signalhub.enforcer.outputs import Output, SourceRecord
from signalhub.errors import RecordError, UnknownSchemaError
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import Record
from signalhub.wire import alert_signal_id

__all__ = ["ALERT_TYPE", "HUB_AGENCY", "UNKNOWN_NEIGHBOURHOOD", "Bundler", "iso_week"]

logger = logging.getLogger(__name__)

#: The signal type the bundler publishes, and the source it names: the hub itself.
ALERT_TYPE = "casework_alert"
HUB_AGENCY = "signalhub"
#: Neighbourhood of a signal without a CBS buurtcode, in the wijkbeeld.
UNKNOWN_NEIGHBOURHOOD = "onbekend"


def iso_week(moment: datetime) -> str:
    """``YYYY-Www`` of the ISO week a moment falls in (UTC)."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


class Bundler:
    """Link signals into bundles and decide alerts; the caller publishes the outbox."""

    def __init__(
        self,
        registry: SchemaRegistry,
        store: BundleStore,
        policy: BundlingPolicy,
        pseudonymiser: Pseudonymiser,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registry = registry
        self._store = store
        self._policy = policy
        self._pseudonymiser = pseudonymiser
        self._clock = clock
        self._alert_schema = registry.signal(ALERT_TYPE)
        self.stats: Counter[str] = Counter()

    def process(self, records: Sequence[SourceRecord]) -> list[Alert]:
        """Take a batch into the state (one transaction); returns the alerts still to publish."""
        with self._store.transaction():
            touched: dict[str, Subject] = {}
            for record in records:
                for subject in self._ingest(record):
                    touched[subject.key] = subject
            for subject in touched.values():
                self._evaluate(subject)
        return self._store.unsent_alerts()

    def outputs(self, alerts: Sequence[Alert]) -> list[Output]:
        """The records that publish these alerts on ``signals.casework_alert``."""
        topic = self._alert_schema.topic
        return [Output(topic, alert.signal_id.encode(), alert.value) for alert in alerts]

    def _ingest(self, record: SourceRecord) -> list[Subject]:
        try:
            _, signal = codec.decode(self._registry, record.value or b"")
            schema = self._registry.signal(str(signal["envelope"]["signal_type"]))
        except (RecordError, UnknownSchemaError, KeyError, TypeError):
            self.stats["undecodable"] += 1
            logger.warning("%s: not a signal this bundler can read; skipped", record.where())
            return []
        envelope: Record = signal["envelope"]
        payload: Record = signal["payload"]
        observed: datetime = envelope["observed_at"]
        neighbourhood = payload.get("neighbourhood_code") or UNKNOWN_NEIGHBOURHOOD
        new = self._store.add_signal(
            envelope["signal_id"],
            schema.signal_type,
            envelope["source_agency"],
            epoch_ms(observed),
            str(neighbourhood),
            iso_week(observed),
        )
        if not new:
            self.stats["duplicates"] += 1
            return []
        self.stats["signals"] += 1
        subjects = subjects_of(schema, payload, self._pseudonymiser)
        person = next((s.key for s in subjects if s.kind == "person"), None)
        for subject in subjects:
            self._store.add_contribution(subject, envelope["signal_id"], person)
        return subjects

    def _evaluate(self, subject: Subject) -> None:
        contributions = self._store.contributions(subject.key)
        decision = self._policy.decide(subject.kind, contributions)
        if not decision.fire:
            return
        latest = self._store.latest_alert(subject.bundle_id)
        if latest is not None and latest.signal_count >= len(contributions):
            return  # fired before and nothing new joined: an alert is never repeated
        revision = 1 if latest is None else latest.revision + 1
        signal_id = alert_signal_id(subject.bundle_id, revision)
        value = self._encode(subject, contributions, decision, revision, signal_id)
        self._store.add_alert(
            Alert(subject.bundle_id, revision, signal_id, len(contributions), value)
        )
        self.stats["alerts"] += 1
        logger.info(
            "bundle %s fired rule %s (revision %d, %d signals)",
            subject.bundle_id,
            decision.rule,
            revision,
            len(contributions),
        )

    def _encode(
        self,
        subject: Subject,
        contributions: Sequence[Contribution],
        decision: RuleDecision,
        revision: int,
        signal_id: str,
    ) -> bytes:
        first = min(c.observed_ms for c in contributions)
        last = max(c.observed_ms for c in contributions)
        record: Record = {
            "envelope": {
                "signal_id": signal_id,
                "signal_type": ALERT_TYPE,
                "source_agency": HUB_AGENCY,
                "source_ref": f"bundle {subject.bundle_id} revision {revision}",
                "observed_at": _moment(last),
                "registered_at": self._clock(),
                "schema_version": self._alert_schema.version,
            },
            "payload": {
                "subject_ref": subject.casework_ref,
                "subject_kind": subject.kind,
                "bundle_id": subject.bundle_id,
                "revision": revision,
                "rule": decision.rule,
                "reasons": list(decision.reasons),
                "agencies": sorted({c.agency for c in contributions}),
                "signal_types": sorted({c.signal_type for c in contributions}),
                "signal_count": len(contributions),
                "first_observed": _moment(first),
                "last_observed": _moment(last),
            },
        }
        return codec.encode(self._registry, self._alert_schema.avro, record)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
