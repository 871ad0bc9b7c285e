"""The enforcer's pure core: one raw signal record in, the records to produce out.

Decode and validate (:mod:`signalhub.enforcer.intake`), take one policy decision for all active
subscriptions of the signal's type, and per permitted subscription project, pseudonymise and
encode a delivery; one audit record per decision, all of a signal's records in one audit-topic
entry after its deliveries. A record that cannot be processed becomes a dead letter (with its
reason and original bytes); a signal whose policy cannot be evaluated is parked, not dropped, and
nothing about it is delivered (fail closed). No faust here: the stream wiring lives in
:mod:`signalhub.enforcer.worker`. What each record came to is told to an
:class:`~signalhub.enforcer.observer.EnforcementObserver` (the metrics).

Error policy, in one place (:meth:`Enforcement.process`):
    DecodeError / ValidationError / oversized / wrong topic  -> dead letter, go on
    PolicyError                                              -> deny + audit "error" + park, go on
    leak guard finding in a delivery                         -> no delivery; report on
                                                                deliveries.blocked (reason, never
                                                                the value) + audit "error", go on
    any other exception while processing one record          -> dead letter "internal_error"
                                                                (a bug: logged with where it
                                                                happened, never a crash loop; the
                                                                record is replayable after a fix)
    StateWriteError (the vault cannot be written)            -> raised, never dead-lettered
Errors outside record processing (the producer, the broker) and a StateWriteError (the hub's
fault, not the record's) crash the worker instead, before the offset is committed, so the record
is processed again after the restart. :meth:`Enforcement.process_batch` returns a batch's outputs
only once the vault holds every pseudonym they carry.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from signalhub.audit import record as audit_record
from signalhub.enforcer.envelope import project_envelope
from signalhub.enforcer.intake import accept
from signalhub.enforcer.leak_guard import Leak, SignalIdentifiers, scan_record
from signalhub.enforcer.observer import NO_OBSERVER, EnforcementObserver, RecordOutcome, Stats
from signalhub.enforcer.outputs import (
    Output,
    SourceRecord,
    blocked_report,
    dead_letter,
    delivery,
    delivery_headers,
    parked,
)
from signalhub.enforcer.projection import (
    Projection,
    PseudonymSink,
    plan_projection,
    project_payload,
)
from signalhub.errors import PolicyError, RecordError, StateWriteError
from signalhub.policy.decision import Decision, build_input
from signalhub.policy.engine import PolicyEngine
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema.codec import encode
from signalhub.schema.registry import SchemaRegistry, SignalSchema, policy_attributes
from signalhub.subscriptions import Subscription
from signalhub.types import AvroSchema, Record
from signalhub.wire import AUDIT_TOPIC, VIEW_SCHEMAS_TOPIC, canonical_json, delivery_id

__all__ = [
    "BufferedPseudonymSink",
    "Enforcement",
    "Output",
    "SourceRecord",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class BufferedPseudonymSink(PseudonymSink, Protocol):
    """A sink that buffers what it is told; :meth:`flush` makes it durable or raises."""

    def flush(self) -> None: ...


class Enforcement:
    """Decide and project signals for their subscribers; no I/O, the caller produces the outputs.

    ``pseudonym_sink`` is told of every pseudonym issued (the re-identification vault); a
    :class:`BufferedPseudonymSink` is flushed by :meth:`process_batch` before it returns.
    ``leak_guard`` scans every delivery before it is encoded (:mod:`signalhub.enforcer.leak_guard`).
    ``observer`` is told, once per record, what it came to (:mod:`signalhub.enforcer.observer`).
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        subscriptions: Mapping[str, Sequence[Subscription]],
        policy: PolicyEngine,
        pseudonymiser: Pseudonymiser,
        audit_schema: AvroSchema,
        *,
        max_record_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pseudonym_sink: PseudonymSink | None = None,
        leak_guard: bool = True,
        observer: EnforcementObserver = NO_OBSERVER,
    ) -> None:
        self._registry = registry
        self._subscriptions = subscriptions
        self._policy = policy
        self._pseudonymiser = pseudonymiser
        self._audit_schema = audit_schema
        self._max_record_bytes = max_record_bytes
        self._clock = clock
        self._sink = pseudonym_sink
        self._leak_guard = leak_guard
        self._observer = observer
        self._published_views: set[bytes] = set()
        self.stats = Stats()

    @property
    def policy(self) -> PolicyEngine:
        """The policy engine deciding for this core (the edge switches published versions)."""
        return self._policy

    def process_batch(self, records: Sequence[SourceRecord]) -> list[Output]:
        """Everything to produce for a batch, in order, once the sink has recorded (flushed) every
        pseudonym in it. On :class:`StateWriteError` produce and commit nothing of the batch."""
        outputs = [output for record in records for output in self.process(record)]
        if isinstance(self._sink, BufferedPseudonymSink):
            self._sink.flush()
        return outputs

    def process(self, record: SourceRecord) -> list[Output]:
        """Everything to produce for one record, in order (view schemas first); not yet safe to
        produce with a buffering sink, whose pseudonyms :meth:`process_batch` records first."""
        started = time.perf_counter()
        outcome = RecordOutcome()
        try:
            outputs = self._process(record, outcome)
        except StateWriteError:
            raise  # the hub cannot record what it would disclose: stop, never dead-letter
        except Exception as exc:  # the error policy: a bug in one record must not stop the rest
            where = _where_it_failed(exc)
            logger.error(
                "%s: processing failed with %s at %s; dead-lettered as internal_error",
                record.where(),
                type(exc).__name__,
                where,
            )
            # Nothing but the dead letter is produced, so nothing else it did may be counted.
            outcome = RecordOutcome(
                outcome.signal_type,
                outcome.source_agency,
                outcome.registered_at,
                dead_letter="internal_error",
            )
            detail = f"{type(exc).__name__} at {where} — fix the enforcer, then replay this record"
            outputs = [dead_letter(record, "internal_error", detail, self._clock())]
        self.stats.add(outcome)
        self._observer.processed(record, outcome, time.perf_counter() - started)
        return outputs

    def _process(self, record: SourceRecord, outcome: RecordOutcome) -> list[Output]:
        try:
            schema, signal = accept(self._registry, record, self._max_record_bytes)
        except RecordError as exc:
            outcome.dead_letter = exc.code
            return [dead_letter(record, exc.code, str(exc), self._clock())]
        envelope: Record = signal["envelope"]
        payload: Record = signal["payload"]
        signal_type = outcome.signal_type = schema.signal_type
        outcome.source_agency = str(envelope["source_agency"])
        outcome.registered_at = envelope["registered_at"]
        subscriptions = self._subscriptions.get(signal_type, ())
        context = self._context(record, schema, signal)
        if not subscriptions:
            return [self._no_subscription(context, outcome)]
        now = self._clock()
        policy_input = build_input(
            signal_type,
            envelope["source_agency"],
            policy_attributes(schema, payload, now.date()),
            [subscription.policy_view() for subscription in subscriptions],
            now.date(),
        )
        try:
            decisions = self._policy.decide(policy_input)
            missing = [s.id for s in subscriptions if s.id not in decisions]
            if missing:
                raise PolicyError(
                    f"the policy gave no decision for subscription(s) {', '.join(missing)}"
                )
        except PolicyError as exc:
            return self._park(record, context, subscriptions, exc, now, outcome)
        # Once per signal, shared by every delivery's scan.
        identifiers = SignalIdentifiers.of(schema, payload) if self._leak_guard else None
        outputs: list[Output] = []
        decided: list[Record] = []
        for subscription in subscriptions:
            produced, decision_record = self._apply(
                schema,
                envelope,
                payload,
                subscription,
                decisions[subscription.id],
                context,
                now,
                outcome,
                identifiers,
            )
            outputs.extend(produced)
            decided.append(decision_record)
        outputs.append(self._audit_output(context.signal_id, decided))
        return outputs

    # -- steps -------------------------------------------------------------------------------

    def _context(
        self, record: SourceRecord, schema: SignalSchema, signal: Record
    ) -> audit_record.DecisionContext:
        envelope: Record = signal["envelope"]
        payload: Record = signal["payload"]
        subject_refs = tuple(
            self._pseudonymiser.pseudonym(audit_record.AUDIT_DOMAIN, "bsn", str(payload[spec.name]))
            for spec in schema.payload_fields
            if spec.pii == "bsn" and payload.get(spec.name)
        )
        return audit_record.DecisionContext(
            signal_id=envelope["signal_id"],
            signal_type=schema.signal_type,
            source_agency=envelope["source_agency"],
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            observed_at=envelope["observed_at"],
            subject_refs=subject_refs,
        )

    def _apply(
        self,
        schema: SignalSchema,
        envelope: Record,
        payload: Record,
        subscription: Subscription,
        decision: Decision,
        context: audit_record.DecisionContext,
        now: datetime,
        outcome: RecordOutcome,
        identifiers: SignalIdentifiers | None = None,
    ) -> tuple[list[Output], Record]:
        """(the records to produce, the audit record of the decision) for one subscription."""

        def audited(
            outcome: str,
            legal_basis: str,
            projection: Projection | None = None,
            delivery: str | None = None,
            reasons: tuple[str, ...] = decision.reasons,
        ) -> Record:
            return audit_record.audit_record(
                context,
                subscription_id=subscription.id,
                subscriber=subscription.subscriber,
                purpose=subscription.purpose,
                legal_basis=legal_basis,
                policy_version=decision.policy_version,
                outcome=outcome,
                reasons=reasons,
                decided_at=now,
                clear=projection.clear if projection else (),
                pseudonymised=projection.pseudonymised if projection else (),
                withheld=projection.withheld
                if projection
                else tuple(spec.name for spec in schema.payload_fields),
                generalised=tuple(f"{name}={how}" for name, how in projection.generalised)
                if projection
                else (),
                pseudonym_domain=decision.domain if projection else None,
                delivery=delivery,
            )

        outcome.policy_version = decision.policy_version
        if not decision.allow:
            outcome.denied += 1
            return [], audited("deny", subscription.legal_basis)
        projection = plan_projection(schema, decision)
        the_delivery_id = delivery_id(context.signal_id, subscription.subscriber)
        view_payload = project_payload(
            schema,
            projection,
            payload,
            self._pseudonymiser,
            decision.domain,
            sink=self._sink,
            today=now.date(),
        )
        view: Record = {
            "envelope": project_envelope(envelope, decision, self._pseudonymiser, self._sink),
            "delivery": {
                "delivery_id": the_delivery_id,
                "subscriber": subscription.subscriber,
                "purpose": subscription.purpose,
                "legal_basis": decision.legal_basis,
                "policy_version": decision.policy_version,
                "pseudonym_domain": decision.domain,
                "withheld": list(projection.withheld),
                "generalised": dict(projection.generalised),
            },
            "payload": view_payload,
        }
        headers = delivery_headers(the_delivery_id, schema.signal_type, decision.policy_version)
        if identifiers is not None:
            leaks = scan_record(view, headers, projection, identifiers)
            if leaks:
                reasons = _blocked_reasons(leaks)
                outcome.errors += 1
                outcome.blocked.append(subscription.subscriber)
                logger.warning(
                    "%s: delivery %s to %s not sent — %s",
                    context.source_topic,
                    the_delivery_id,
                    subscription.subscriber,
                    "; ".join(reasons),
                )
                blocked = _blocked_output(
                    context, subscription, decision, the_delivery_id, reasons, now
                )
                return [blocked], audited("error", decision.legal_basis, projection, None, reasons)
        view_schema = self._registry.view_schema(
            schema.signal_type,
            projection.clear,
            projection.pseudonymised,
            dict(projection.generalised),
        )
        outputs = self._view_schema_outputs(view_schema)
        value = encode(self._registry, view_schema, view, trusted=True)
        outputs.append(delivery(subscription.topic, the_delivery_id, value, headers))
        outcome.allowed += 1
        outcome.delivered.append(subscription.subscriber)
        return outputs, audited("allow", decision.legal_basis, projection, the_delivery_id)

    def _park(
        self,
        record: SourceRecord,
        context: audit_record.DecisionContext,
        subscriptions: Sequence[Subscription],
        exc: PolicyError,
        now: datetime,
        outcome: RecordOutcome,
    ) -> list[Output]:
        """Fail closed: deliver nothing, audit every subscription as an error, park the signal."""
        logger.warning("%s: policy evaluation failed, signal parked: %s", record.where(), exc)
        version = outcome.policy_version = self._policy.version
        decided = [
            audit_record.audit_record(
                context,
                subscription_id=subscription.id,
                subscriber=subscription.subscriber,
                purpose=subscription.purpose,
                legal_basis=subscription.legal_basis,
                policy_version=version,
                outcome="error",
                reasons=(f"policy evaluation failed: {exc}",),
                decided_at=now,
            )
            for subscription in subscriptions
        ]
        outcome.errors += len(subscriptions)
        outcome.parked = True
        return [self._audit_output(context.signal_id, decided), parked(record, str(exc), now)]

    def _no_subscription(
        self, context: audit_record.DecisionContext, outcome: RecordOutcome
    ) -> Output:
        """A signal nobody subscribed to is still accounted for, as a denial."""
        outcome.denied += 1
        outcome.policy_version = self._policy.version
        record = audit_record.audit_record(
            context,
            subscription_id=audit_record.NO_SUBSCRIPTION,
            subscriber=audit_record.NO_SUBSCRIPTION,
            purpose=audit_record.NO_SUBSCRIPTION,
            legal_basis=audit_record.NO_SUBSCRIPTION,
            policy_version=outcome.policy_version,
            outcome="deny",
            reasons=("no active subscription for this signal type",),
            decided_at=self._clock(),
        )
        return self._audit_output(context.signal_id, [record])

    def _view_schema_outputs(self, view_schema: AvroSchema) -> list[Output]:
        """Publish a view schema once per process, before the first delivery that needs it."""
        fingerprint = self._registry.register(view_schema)
        if fingerprint in self._published_views:
            return []
        self._published_views.add(fingerprint)
        text = canonical_json(view_schema)
        return [Output(VIEW_SCHEMAS_TOPIC, fingerprint.hex().encode(), text.encode())]

    def _audit_output(self, signal_id: str, decided: Sequence[Record]) -> Output:
        """One audit-topic record holding every decision taken about the signal."""
        entry = audit_record.audit_entry(signal_id, decided)
        value = encode(self._registry, self._audit_schema, entry, trusted=True)
        return Output(AUDIT_TOPIC, signal_id.encode(), value)


def _blocked_reasons(leaks: Sequence[Leak]) -> tuple[str, ...]:
    findings = sorted({leak.describe() for leak in leaks})
    return (f"leak guard blocked the delivery: {', '.join(findings)}",)


def _blocked_output(
    context: audit_record.DecisionContext,
    subscription: Subscription,
    decision: Decision,
    the_delivery_id: str,
    reasons: tuple[str, ...],
    now: datetime,
) -> Output:
    report: dict[str, object] = {
        "delivery_id": the_delivery_id,
        "signal_id": context.signal_id,
        "signal_type": context.signal_type,
        "subscription_id": subscription.id,
        "subscriber": subscription.subscriber,
        "policy_version": decision.policy_version,
        "reasons": list(reasons),
        "source": f"{context.source_topic}[{context.source_partition}]@{context.source_offset}",
        "blocked_at": now.isoformat(),
    }
    return blocked_report(report, reasons[0], now)


def _where_it_failed(exc: BaseException) -> str:
    """The innermost frame of a traceback as file:line, without the message (it may hold data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown location"
    frame = frames[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
