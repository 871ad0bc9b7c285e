"""A running hub for integration tests, and the checks every one of them needs.

:func:`running_hub` starts what ``signalhub demo`` starts (topics plus one enforcer worker
process, via :func:`signalhub.apps.demo.run_stack`) against a given broker, with its own state
directory and consumer group. :class:`Hub` then publishes agency records through the real
connectors, waits until the enforcer has accounted for them, and reads back deliveries, audit
records and dead letters. The expected outcome of a signal is computed independently of the
enforcer, with the real policy engine (:meth:`Hub.expected_decisions`).

Topics are shared by every hub on the session broker, so a test only ever looks at the signal
ids it published itself. The agency records are generated here: each :class:`Person` has a BSN
that passes the eleven test and a unique name and address, so a clear identifier can be searched
for in the bytes of a delivery.
"""

from __future__ import annotations

import contextlib
import random
import string
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from signalhub.apps.demo import Accounting, prepare_settings, run_stack
from signalhub.apps.stack import EnforcerProcess
from signalhub.audit import record as audit_record
from signalhub.broker.reader import drain, open_consumer
from signalhub.config import Settings, load_settings
from signalhub.connector import (
    ConnectorDefinition,
    ConnectorRunner,
    KafkaPublisher,
    RejectList,
    load_definitions,
    open_source,
)
from signalhub.connector import SourceRecord as AgencyRecord
from signalhub.connector.runner import RunReport
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import DeliveredRecord, decode_delivery, to_json_value
from signalhub.policy.decision import Decision, build_input
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.keys import load_master_key
from signalhub.pseudonym.pseudonyms import Pseudonymiser
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry, policy_attributes
from signalhub.subscriptions import Subscription, by_signal_type, load_subscriptions
from signalhub.types import Record
from signalhub.wire import DLQ_TOPIC, delivery_id, header

__all__ = [
    "Delivery",
    "Hub",
    "ListSource",
    "Person",
    "RecordingPublisher",
    "gemeente_case",
    "new_person",
    "politie_row",
    "running_hub",
    "schuld_row",
    "valid_bsn",
    "write_csv",
    "write_jsonl",
]

_random = random.SystemRandom()

POLITIE_COLUMNS = (
    "bvh_nummer",
    "incident_code",
    "pleegdatum",
    "bsn_verdachte",
    "naam_verdachte",
    "geboortedatum_verdachte",
    "adres",
    "postcode",
    "buurtcode",
    "omschrijving",
    "ernst",
    "middel",
    "slachtoffer",
    "ondermijning",
)


# -- generated agency records ---------------------------------------------------------------


def valid_bsn() -> str:
    """A random nine-digit BSN that passes the eleven test."""
    while True:
        digits = [_random.randint(1, 9)] + [_random.randint(0, 9) for _ in range(7)]
        check = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return "".join(map(str, digits)) + str(check)


@dataclass(frozen=True)
class Person:
    """A generated subject whose identifiers are unique enough to search for in bytes."""

    bsn: str
    name: str
    address: str
    postcode: str
    birth_date: date

    def identifiers(self) -> tuple[str, ...]:
        return (self.bsn, self.name, self.address)


def new_person(*, birth_year: int = 1980) -> Person:
    # Letters only: digits in a clear address could form a BSN-valid number, which the leak
    # guard rightly blocks.
    tag = "".join(_random.choice(string.ascii_lowercase) for _ in range(10))
    return Person(
        bsn=valid_bsn(),
        name=f"Anna Verhoeven-{tag}",
        address=f"Kapoenstraat {_random.randint(1, 300)} {tag}, Maastricht",
        postcode=f"62{_random.randint(10, 29)} {_random.choice('ABCDEFGH')}{_random.choice('KMN')}",
        birth_date=date(birth_year, 5, 17),
    )


def politie_row(person: Person | None, code: str = "F354", **columns: str) -> dict[str, str]:
    """One line of the police BVH export (all columns, as text)."""
    row = {
        "bvh_nummer": f"PL-T-{uuid.uuid4().hex[:12]}",
        "incident_code": code,
        "pleegdatum": "14-04-2025 06:28",
        "bsn_verdachte": person.bsn if person else "",
        "naam_verdachte": person.name if person else "",
        "geboortedatum_verdachte": person.birth_date.strftime("%d-%m-%Y") if person else "",
        "adres": person.address if person else "",
        "postcode": person.postcode if person else "",
        "buurtcode": "BU09350304",
        "omschrijving": "Agressief gedrag bij de bushalte, omstanders aangesproken.",
        "ernst": "4",
        "middel": "",
        "slachtoffer": "",
        "ondermijning": "nee",
    }
    row.update(columns)
    return row


def gemeente_case(person: Person, zaaktype: str = "OVERLAST", **fields: Any) -> dict[str, Any]:
    """One case of the municipal case system, as JSON (nested person and location)."""
    case: dict[str, Any] = {
        "zaaknummer": f"Z-T-{uuid.uuid4().hex[:12]}",
        "zaaktype": zaaktype,
        "registratiedatum": "2025-06-24T17:09:00+01:00",
        "betrokkene": {
            "bsn": person.bsn,
            "naam": person.name,
            "geboortedatum": person.birth_date.isoformat(),
        },
        "locatie": {"adres": person.address, "postcode": person.postcode, "buurtcode": "BU0935"},
        "toelichting": "Zaak in behandeling bij team Veiligheid.",
    }
    if zaaktype == "OVERLAST":
        case |= {"categorie": "geluid", "melder": "bewoner", "ernst": 4}
    case.update(fields)
    return case


def schuld_row(person: Person, mutatie_id: int, soort: str = "HUUR") -> dict[str, Any]:
    """One row of the debt-counselling register table ``schuldsignalen``."""
    return {
        "mutatie_id": mutatie_id,
        "signaalnummer": f"VS-T-{uuid.uuid4().hex[:12]}",
        "signaalsoort": soort,
        "signaaldatum": "2025-06-25 02:07:00",
        "bsn": person.bsn,
        "naam": person.name,
        "geboortedatum": person.birth_date.isoformat(),
        "adres": person.address,
        "postcode": person.postcode,
        "buurtcode": "BU09350203",
        "schuldeiser": "Woningstichting Maasdal",
        "bedrag_achterstand": 1323.05,
        "maanden_achterstand": 7,
        "urgentie": "normaal",
        "verwijzer": None,
        "toelichting": "Vroegsignaal vaste lasten.",
    }


SCHULD_TABLE = (
    "CREATE TABLE {table} (mutatie_id BIGINT PRIMARY KEY, signaalnummer TEXT NOT NULL, "
    "signaalsoort TEXT NOT NULL, signaaldatum TIMESTAMP, bsn TEXT, naam TEXT, geboortedatum DATE, "
    "adres TEXT, postcode TEXT, buurtcode TEXT, schuldeiser TEXT, "
    "bedrag_achterstand NUMERIC(10,2), maanden_achterstand INTEGER, urgentie TEXT, "
    "verwijzer TEXT, toelichting TEXT)"
)


def write_csv(
    path: Path, rows: Iterable[Mapping[str, str]], *, extra_lines: Iterable[str] = ()
) -> Path:
    """A ';'-separated police export; ``extra_lines`` are appended verbatim (malformed rows)."""
    lines = [";".join(POLITIE_COLUMNS)]
    lines += [";".join(row[column] for column in POLITIE_COLUMNS) for row in rows]
    lines += list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: Iterable[Mapping[str, Any] | str]) -> Path:
    import json

    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


class ListSource:
    """Agency records from memory, read like a file (the connector's Source protocol)."""

    def __init__(self, records: list[dict[str, Any]], name: str = "generated") -> None:
        self.name = name
        self._records = records

    def read(self) -> Iterator[AgencyRecord]:
        for number, raw in enumerate(self._records, start=1):
            yield AgencyRecord(f"{self.name}:{number}", raw)

    def commit(self, position: Any) -> None:
        """Nothing to remember."""


class RecordingPublisher(KafkaPublisher):
    """The real Kafka publisher that also keeps what it sent, so a test can decode its signals."""

    def __init__(self, bootstrap_servers: str) -> None:
        super().__init__(bootstrap_servers)
        self.sent: list[tuple[str, bytes, bytes]] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        super().publish(topic, key, value)
        self.sent.append((topic, key, value))


# -- the running hub ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One record of a ``deliveries.<subscriber>`` topic: raw bytes and decoded."""

    subscriber: str
    key: bytes | None
    value: bytes
    decoded: DeliveredRecord
    #: The hub's id of the signal, resolved by :class:`HubSignalIds`: the envelope carries only
    #: the subscriber domain's own id (``signalhub.enforcer.envelope``).
    signal_id: str

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.decoded.record["payload"]
        return payload

    @property
    def delivery(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.decoded.record["delivery"]
        return meta


class HubSignalIds:
    """Maps a delivery back to the hub's id of its signal, for assertions.

    The envelope carries only the subscriber domain's own signal id; the delivery id is
    ``delivery_id(signal_id, subscriber)``, so a test that knows the candidate hub ids (what it
    published) finds the one it came from. A delivery of an unknown signal keeps its domain id.
    """

    def __init__(self) -> None:
        self._known: dict[str, str] = {}
        self._indexed: set[tuple[str, str]] = set()

    def resolve(self, decoded: DeliveredRecord, subscriber: str, candidates: Iterable[str]) -> str:
        if decoded.delivery_id not in self._known:
            for signal_id in candidates:
                if (signal_id, subscriber) not in self._indexed:
                    self._indexed.add((signal_id, subscriber))
                    self._known[delivery_id(signal_id, subscriber)] = signal_id
        return self._known.get(decoded.delivery_id, str(decoded.record["envelope"]["signal_id"]))


@dataclass
class Hub:
    """A broker plus one enforcer worker, with the same configuration the worker loaded."""

    settings: Settings
    bootstrap: str
    registry: SchemaRegistry
    enforcer: EnforcerProcess
    policy: EmbeddedPolicyEngine
    subscriptions: list[Subscription]
    pseudonymiser: Pseudonymiser
    definitions: dict[str, ConnectorDefinition]
    #: Every signal any test published through this hub: signal id -> decoded signal record.
    signals: dict[str, Record] = field(default_factory=dict)
    signal_ids: HubSignalIds = field(default_factory=HubSignalIds)

    # -- publishing --------------------------------------------------------------------------

    def run_connector(
        self, name: str, source: Any, *, state: Path | None = None
    ) -> tuple[RunReport, RejectList]:
        """Run connector ``name`` over ``source`` (a location string or a Source) to Kafka."""
        rejects = RejectList()
        publisher = RecordingPublisher(self.bootstrap)
        try:
            runner = self.runner(name, publisher, rejects)
            if isinstance(source, str):
                watermarks = state or self.settings.state_dir / f"wm-{uuid.uuid4().hex}.sqlite"
                source = open_source(self.definitions[name], source, state=watermarks)
            report = runner.run(source)
        finally:
            publisher.close()
        self.remember(publisher.sent)
        return report, rejects

    def runner(self, name: str, publisher: Any, rejects: RejectList) -> ConnectorRunner:
        return ConnectorRunner(
            self.definitions[name],
            self.registry,
            publisher,
            rejects=rejects,
            max_record_bytes=self.settings.max_record_bytes,
        )

    def remember(self, sent: Iterable[tuple[str, bytes, bytes]]) -> None:
        for _topic, key, value in sent:
            _, record = codec.decode(self.registry, value)
            self.signals[key.decode()] = record

    # -- waiting and reading back ------------------------------------------------------------

    def wait_accounted(self, ids: Iterable[str], timeout_s: float = 60.0) -> Accounting:
        """Block until every id (signal id, or key of a dead letter) is audited or dead-lettered.

        Returns the closed accounting, whose ``audit`` and ``dead_letters`` hold everything read.
        """
        wanted = set(ids)
        with Accounting(self.bootstrap, self.registry, self.settings) as accounting:
            accounting.wait_for(wanted, _quiet, self.enforcer, timeout_s=timeout_s)
            return accounting

    def audit_rows(
        self, accounting: Accounting, ids: Iterable[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Audit rows of the given signal ids, grouped by signal id."""
        wanted = set(ids)
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in accounting.audit:
            if row["signal_id"] in wanted:
                rows[row["signal_id"]].append(row)
        return rows

    def deliveries(self, signal_ids: Iterable[str] | None = None) -> list[Delivery]:
        """Every record on every subscriber's topic (whole topics), optionally only some signals."""
        wanted = None if signal_ids is None else set(signal_ids)
        topics = [f"deliveries.{name}" for name in self.subscriber_names()]
        found: list[Delivery] = []
        with ViewSchemaCatalog(self.bootstrap, self.registry) as catalog:
            for message in read_topics(self.bootstrap, topics):
                decoded = decode_delivery(catalog, message)
                subscriber = message.topic.removeprefix("deliveries.")
                candidates = [*self.signals, *(signal_ids or ())]
                delivery = Delivery(
                    subscriber,
                    message.key,
                    bytes(message.value),
                    decoded,
                    self.signal_ids.resolve(decoded, subscriber, candidates),
                )
                if wanted is None or delivery.signal_id in wanted:
                    found.append(delivery)
        return found

    def wait_deliveries(
        self, delivery_ids: Iterable[str], signal_ids: Iterable[str], timeout_s: float = 20.0
    ) -> list[Delivery]:
        """The deliveries of ``signal_ids`` once every one of ``delivery_ids`` is readable.

        An audit record can become visible before the delivery it describes (different topics),
        so a test that has seen the audit waits here for the deliveries.
        """
        import time

        expected = set(delivery_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.deliveries(signal_ids)
            missing = expected - {d.decoded.delivery_id for d in found}
            if not missing or time.monotonic() > deadline:
                assert not missing, f"{len(missing)} audited deliveries never arrived"
                return found

    def dead_letters(self, keys: Iterable[bytes]) -> dict[bytes, Any]:
        """The DLQ records with the given keys (the raw Kafka messages)."""
        wanted = set(keys)
        return {
            message.key: message
            for message in read_topics(self.bootstrap, [DLQ_TOPIC])
            if message.key in wanted
        }

    def subscriber_names(self) -> list[str]:
        return sorted({s.subscriber for s in self.subscriptions})

    # -- the expected outcome, computed without the enforcer ----------------------------------

    def expected_decisions(self, signal: Record) -> dict[str, tuple[Subscription, Decision]]:
        """What the shipped policy decides for this signal, per subscription id."""
        signal_type = signal["envelope"]["signal_type"]
        schema = self.registry.signal(signal_type)
        subscriptions = by_signal_type(self.subscriptions).get(signal_type, ())
        today = datetime.now(UTC).date()
        decisions = self.policy.decide(
            build_input(
                signal_type,
                signal["envelope"]["source_agency"],
                policy_attributes(schema, signal["payload"], today),
                [subscription.policy_view() for subscription in subscriptions],
                today,
            )
        )
        return {s.id: (s, decisions[s.id]) for s in subscriptions}

    def assert_delivery_is_exactly_permitted(self, delivery: Delivery, decision: Decision) -> None:
        """Payload keys, pseudonyms, clear values and withheld list are what ``decision`` says.

        Precedence when the decision's lists overlap: pseudonymise, then generalise, then clear.
        A generalised field arrives coarsened (never as its clear value) or, when the method does
        not fit it, is withheld. Free text in clear may be scrubbed, so it is checked for the
        identifiers it must not carry rather than compared.
        """
        signal = self.signals[delivery.signal_id]
        schema = self.registry.signal(signal["envelope"]["signal_type"])
        source = signal["payload"]
        names = [spec.name for spec in schema.payload_fields]
        pseudonymised = [n for n in names if n in decision.pseudonymise]
        generalised = [n for n in names if n in decision.generalise and n not in pseudonymised]
        clear = [
            n
            for n in names
            if n in decision.fields and n not in pseudonymised and n not in generalised
        ]
        shown_generalised = [n for n in generalised if n in delivery.payload]
        withheld = [n for n in names if n not in clear + pseudonymised + shown_generalised]
        assert decision.allow
        assert set(delivery.payload) == set(clear) | set(pseudonymised) | set(shown_generalised)
        assert delivery.delivery["withheld"] == withheld
        assert delivery.delivery["delivery_id"] == delivery_id(
            delivery.signal_id, delivery.subscriber
        )
        assert delivery.delivery["pseudonym_domain"] == decision.domain
        assert delivery.delivery["policy_version"] == decision.policy_version
        for name in clear:
            if schema.field(name).pii == "free_text":
                continue
            assert delivery.payload[name] == to_json_value(source[name]), name
        for name in shown_generalised:
            value = delivery.payload[name]
            assert value is None or value != to_json_value(source[name]), name
        for name in pseudonymised:
            value = source[name]
            if value is None:
                assert delivery.payload[name] is None, name
                continue
            kind = schema.field(name).pii or name
            expected = self.pseudonymiser.pseudonym(decision.domain, kind, str(value))
            assert delivery.payload[name] == expected, name
            assert expected.startswith("pn1.")
        shown_as_pseudonym = {k for k, v in delivery.payload.items() if _is_pseudonym(v)}
        assert shown_as_pseudonym == {n for n in pseudonymised if source[n] is not None}


def _is_pseudonym(value: object) -> bool:
    return isinstance(value, str) and value.startswith("pn1.")


def _quiet(_line: str) -> None:
    """Accounting's progress lines are for the demo's console, not for test output."""


def read_topics(bootstrap: str, topics: Iterable[str], idle_ms: int = 400) -> list[Any]:
    """Every record of the given topics, read in one pass until idle (never trusting offsets)."""
    consumer = open_consumer(bootstrap, client_id="signalhub-tests")
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return list(drain(consumer, idle_ms=idle_ms, first_wait_ms=max(idle_ms, 1500)))
    finally:
        consumer.close()


def reason_of(message: Any) -> str | None:
    return header(message, "signalhub.reason")


@contextlib.contextmanager
def running_hub(bootstrap: str, state_dir: Path, group: str) -> Iterator[Hub]:
    """Topics plus one enforcer worker (a child process) on ``bootstrap``, for a block."""
    settings = prepare_settings(
        load_settings(bootstrap_servers=bootstrap, state_dir=state_dir, enforcer_group=group)
    )
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    audit_record.register_audit_schemas(registry, settings.schemas_dir)
    subscriptions = load_subscriptions(settings.subscriptions_file, registry.signal_types())
    policy = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
    master_key, version = load_master_key(settings)
    try:
        with run_stack(settings, bootstrap, _quiet) as enforcer:
            yield Hub(
                settings=settings,
                bootstrap=bootstrap,
                registry=registry,
                enforcer=enforcer,
                policy=policy,
                subscriptions=subscriptions,
                pseudonymiser=Pseudonymiser(master_key, version),
                definitions=load_definitions(settings.connectors_dir),
            )
    finally:
        policy.close()
