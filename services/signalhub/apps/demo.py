"""The demo: the whole hub on the embedded default, over the shipped sample data.

It starts the broker, an enforcer worker and the bundler, runs every agency connector over its
sample file, waits until every published signal is accounted for (audited, dead-lettered or
parked), then until the bundler has processed them all and its casework alerts are accounted for
too, then shows per subscriber what it received, the casework alerts, what went to the DLQ and
the rejects, and a summary. Everything it starts, it stops.

Why everything it writes is owner-only: the state directory and the ``--out`` files hold clear
personal data (rejects are the agencies' raw rows). The state directory is made ``0700``, and
tightened with a warning when an earlier version left it open; the out files are ``0600``.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signalhub.apps.stack import BundlerProcess, EnforcerProcess
from signalhub.audit.record import decisions_in, register_audit_schemas
from signalhub.broker.admin import create_topics
from signalhub.broker.connect import connect
from signalhub.broker.reader import assign_topics, drain, open_consumer
from signalhub.bundling import progress
from signalhub.bundling.store import store_path
from signalhub.config import Settings, settings_env
from signalhub.connector.definition import ConnectorDefinition, load_definitions
from signalhub.connector.mapping import ObservedWindow
from signalhub.connector.publisher import KafkaPublisher
from signalhub.connector.runner import ConnectorRunner, Reject, RejectList, RunReport
from signalhub.connector.sources import open_source
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import DeliveredRecord, read_deliveries, to_json_value
from signalhub.enforcer.worker import enforcer_topics
from signalhub.errors import SignalhubError
from signalhub.pseudonym.keys import default_key_file, ensure_dev_key
from signalhub.pseudonym.vault import ensure_vault_key, vault_key_file
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import load_subscriptions, subscribers
from signalhub.wire import (
    AUDIT_TOPIC,
    DETAIL_HEADER,
    DLQ_TOPIC,
    PARKED_TOPIC,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    delivery_id,
    header,
)

__all__ = ["Accounting", "DemoReport", "find_inputs", "run_demo", "run_stack", "wait_for_bundler"]

Echo = Callable[[str], None]

#: Bytes no connector would write: the demo puts one on a signal topic to show the DLQ at work.
FOREIGN_RECORD = b"\x00not-avro: a misbehaving producer wrote this straight onto the topic"
DRAIN_TIMEOUT_S = 180.0


@dataclass
class DemoReport:
    """What the demo did, as counts and the records it read back."""

    runs: list[RunReport] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    deliveries: dict[str, list[DeliveredRecord]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    #: Signal ids of the casework alerts the bundler published, oldest first.
    alert_ids: list[str] = field(default_factory=list)

    def alerts(self) -> dict[str, DeliveredRecord]:
        """The casework alerts as delivered, by the hub's id of the alert signal.

        A delivered envelope carries the domain's own signal id, so an alert is found by its
        delivery id (derived from the hub's signal id and the subscriber).
        """
        hub_id_of = {
            delivery_id(signal_id, subscriber): signal_id
            for signal_id in self.alert_ids
            for subscriber in self.deliveries
        }
        return {
            hub_id_of[record.delivery_id]: record
            for records in self.deliveries.values()
            for record in records
            if record.delivery_id in hub_id_of
        }

    @property
    def published(self) -> int:
        return sum(run.published for run in self.runs)

    def outcomes(self) -> Counter[str]:
        return Counter(str(record["outcome"]) for record in self.audit)


def find_inputs(
    definitions: dict[str, ConnectorDefinition], input_dir: Path | None, samples_dir: Path
) -> list[tuple[str, str]]:
    """(connector, source location) pairs to run.

    Without ``input_dir``: every sample each definition names. With it: the agency files
    ``<input>/<agency>.csv``, ``.jsonl`` or ``.sqlite`` (a SQLite file holding the agency's table).
    """
    found: list[tuple[str, str]] = []
    for name in sorted(definitions):
        if input_dir is None:
            for spec in definitions[name].sources:
                if spec.sample:
                    path = samples_dir / spec.sample
                    found.append((name, f"sqlite:///{path}" if spec.kind == "sql" else str(path)))
            continue
        for suffix in (".csv", ".jsonl", ".sqlite"):
            path = input_dir / f"{name}{suffix}"
            if path.exists():
                found.append((name, f"sqlite:///{path}" if suffix == ".sqlite" else str(path)))
    if not found:
        raise SignalhubError(
            f"no agency files in {input_dir} — expected <agency>.csv, .jsonl or .sqlite "
            f"for agencies {', '.join(sorted(definitions))} (see docs/connectors.md)"
        )
    return found


def run_demo(
    settings: Settings, echo: Echo, input_dir: Path | None = None, out_dir: Path | None = None
) -> DemoReport:
    """Run the whole flow once and return what happened; writes OUT files when asked."""
    private_state_dir(settings.state_dir, echo)
    settings = prepare_settings(settings)
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    definitions = load_definitions(settings.connectors_dir)
    inputs = find_inputs(definitions, input_dir, settings.connectors_dir)
    forget_stream_state(settings)
    report = DemoReport()
    with (
        connect(settings, own=True) as bootstrap,
        run_stack(settings, bootstrap, echo) as enforcer,
        BundlerProcess(
            bootstrap, settings.state_dir / "bundler.log", settings_env(settings)
        ) as bundler,
    ):
        publish_inputs(bootstrap, settings, registry, definitions, inputs, report, echo)
        if input_dir is None:
            _publish_foreign_record(bootstrap, registry)
        expected_ids = {signal_id for run in report.runs for signal_id in run.signal_ids}
        dead_letters = 0 if input_dir else 1
        with Accounting(bootstrap, registry, settings) as accounting:
            accounting.wait_for(expected_ids, echo, enforcer, dead_letters=dead_letters)
            report.alert_ids = wait_for_bundler(settings, expected_ids, echo, bundler)
            if report.alert_ids:
                accounting.wait_for(
                    set(report.alert_ids), echo, enforcer, dead_letters=dead_letters, what="alerts"
                )
            ids = expected_ids | set(report.alert_ids)
            report.audit = [row for row in accounting.audit if row["signal_id"] in ids]
            report.dead_letters = accounting.dead_letters
        with ViewSchemaCatalog(bootstrap, registry) as catalog:
            for name in subscribers(load_subscriptions(settings.subscriptions_file)):
                report.deliveries[name] = list(
                    read_deliveries(bootstrap, name, catalog, dedupe=True)
                )
    if out_dir is not None:
        write_outputs(report, out_dir)
    return report


def wait_for_bundler(
    settings: Settings,
    signal_ids: set[str],
    echo: Echo,
    bundler: BundlerProcess | None = None,
    *,
    timeout_s: float = DRAIN_TIMEOUT_S,
    poll_s: float = 0.2,
) -> list[str]:
    """Block until the bundler has processed every id and published its alerts; their ids.

    Read from the bundler's state (:func:`signalhub.bundling.progress`), not from end offsets.
    """
    deadline = time.monotonic() + timeout_s
    last_line = ""
    while True:
        processed, sent, pending = progress(settings, signal_ids)
        line = (
            f"  bundler: {processed}/{len(signal_ids)} signals processed, "
            f"{len(sent)} casework alerts published"
        )
        if line != last_line:
            echo(line)
            last_line = line
        if processed == len(signal_ids) and pending == 0:
            return sent
        if bundler is not None:
            bundler.check_alive()
        if time.monotonic() > deadline:
            raise SignalhubError(
                f"the bundler processed only {processed} of {len(signal_ids)} signals within "
                f"{timeout_s:.0f} s — look at its log ({settings.state_dir / 'bundler.log'})"
            )
        time.sleep(poll_s)


def publish_inputs(
    bootstrap: str,
    settings: Settings,
    registry: SchemaRegistry,
    definitions: dict[str, ConnectorDefinition],
    inputs: list[tuple[str, str]],
    report: DemoReport,
    echo: Echo,
) -> None:
    """Run each connector over its source; runs and rejects are added to ``report``."""
    publisher = KafkaPublisher(bootstrap)
    with tempfile.TemporaryDirectory(prefix="signalhub-demo-") as scratch:
        try:
            for name, location in inputs:
                rejects = RejectList()
                runner = ConnectorRunner(
                    definitions[name],
                    registry,
                    publisher,
                    rejects=rejects,
                    max_record_bytes=settings.max_record_bytes,
                    window=ObservedWindow.from_settings(settings),
                )
                # A fresh watermark store per run: the demo reads each SQL table from its start.
                state = Path(scratch) / f"{name}-watermarks.sqlite"
                run = runner.run(open_source(definitions[name], location, state=state))
                report.runs.append(run)
                report.rejects.extend(rejects.rejects)
                echo(
                    f"  connector {name:<20} {run.read:>4} read  {run.published:>4} published  "
                    f"{run.rejected:>3} rejected  ({run.source})"
                )
        finally:
            publisher.close()


def _publish_foreign_record(bootstrap: str, registry: SchemaRegistry) -> None:
    """Bytes no connector would write, straight onto a signal topic: the DLQ at work."""
    publisher = KafkaPublisher(bootstrap)
    try:
        publisher.publish(registry.signal("nuisance_report").topic, b"foreign-1", FOREIGN_RECORD)
        publisher.flush()
    finally:
        publisher.close()


def forget_stream_state(settings: Settings) -> None:
    """Remove the bundler's state left by an earlier demo run.

    The demo always starts a new, empty broker, so bundles and sent alerts remembered from the
    previous run's topics would only make the bundler skip this run's signals as already seen.
    Keys, the vault and the audit store are kept.
    """
    database = store_path(settings.state_dir)
    for path in (
        database,
        database.with_name(database.name + "-wal"),
        database.with_name(database.name + "-shm"),
    ):
        path.unlink(missing_ok=True)


def private_state_dir(state_dir: Path, echo: Echo) -> None:
    """Create the state directory owner-only, or take group and other access away from it."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(state_dir.stat().st_mode)
    if mode & 0o077:
        state_dir.chmod(mode & 0o700)
        echo(
            f"  warning: the state directory {state_dir} was open to others "
            f"(mode {mode:04o}); made it owner-only ({mode & 0o700:04o})"
        )


def prepare_settings(settings: Settings) -> Settings:
    """Absolute state dir; without configured keys, owner-only development key files.

    The pseudonym master key and the re-identification vault key are separate files.
    """
    settings = settings.model_copy(update={"state_dir": settings.state_dir.resolve()})
    if settings.vault_key_file is None:
        ensure_vault_key(vault_key_file(settings))
    if settings.master_key is not None or settings.key_file is not None:
        return settings
    key_file = default_key_file(settings).resolve()
    ensure_dev_key(key_file)
    return settings.model_copy(update={"key_file": key_file})


class run_stack:  # noqa: N801 - used as a context manager like contextlib helpers
    """Create the hub's topics and run one enforcer worker against ``bootstrap`` for a block."""

    def __init__(self, settings: Settings, bootstrap: str, echo: Echo) -> None:
        sources, sinks = enforcer_topics(settings)
        create_topics(bootstrap, sources, partitions=settings.partitions)
        create_topics(bootstrap, sinks, partitions=1)
        # The worker reads exactly this command's settings, whatever their source was.
        env = settings_env(settings)
        self.log_path = settings.state_dir / "enforcer.log"
        self.process = EnforcerProcess(bootstrap, self.log_path, env)
        self._echo = echo

    def __enter__(self) -> EnforcerProcess:
        self._echo(f"  enforcer worker starting (log: {self.log_path})")
        return self.process.start()

    def __exit__(self, *exc_info: object) -> None:
        self.process.stop()


class Accounting:
    """Reads the audit, DLQ and parked topics as they fill, to tell when signals are accounted for.

    A published signal is accounted for once an audit record (allow, deny or error) or a dead
    letter names it. Counting is done by consuming, never from end offsets (tansu under-reports
    them).
    """

    def __init__(self, bootstrap: str, registry: SchemaRegistry, settings: Settings) -> None:
        self._registry = registry
        register_audit_schemas(registry, settings.schemas_dir)
        self._consumer = open_consumer(bootstrap, client_id="signalhub-accounting")
        assign_topics(self._consumer, (AUDIT_TOPIC, DLQ_TOPIC, PARKED_TOPIC))
        self.audit: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []
        self.parked: list[dict[str, Any]] = []
        self.seen: set[str] = set()

    def read(self, idle_ms: int = 500) -> None:
        """Take in whatever arrived, until the topics stay quiet for ``idle_ms``."""
        for message in drain(self._consumer, idle_ms=idle_ms):
            if message.topic == AUDIT_TOPIC:
                _, entry = codec.decode(self._registry, message.value)
                for record in decisions_in(entry):
                    self.audit.append({k: to_json_value(v) for k, v in record.items()})
                self.seen.add(entry["signal_id"])
                continue
            failure = _failure_json(message)
            (self.dead_letters if message.topic == DLQ_TOPIC else self.parked).append(failure)
            if failure["key"]:
                self.seen.add(failure["key"])

    def wait_for(
        self,
        signal_ids: set[str],
        echo: Echo,
        enforcer: EnforcerProcess | None = None,
        *,
        dead_letters: int = 0,
        timeout_s: float = DRAIN_TIMEOUT_S,
        what: str = "signals",
    ) -> None:
        """Block until every id is accounted for and ``dead_letters`` DLQ records arrived.

        ``what`` names the ids in the progress lines ("signals", "alerts").
        """
        deadline = time.monotonic() + timeout_s
        last_line = ""
        while True:
            self.read()
            accounted = len(signal_ids & self.seen)
            line = (
                f"  enforcer: {accounted}/{len(signal_ids)} {what} accounted for, "
                f"{len(self.dead_letters)} dead letters"
            )
            if line != last_line:
                echo(line)
                last_line = line
            if accounted == len(signal_ids) and len(self.dead_letters) >= dead_letters:
                return
            if enforcer is not None:
                enforcer.check_alive()
            if time.monotonic() > deadline:
                raise SignalhubError(
                    f"only {accounted} of {len(signal_ids)} {what} were processed within "
                    f"{timeout_s:.0f} s — look at the enforcer's log"
                )

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Accounting:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _failure_json(message: Any) -> dict[str, Any]:
    return {
        "topic": message.topic,
        "key": message.key.decode("utf-8", "replace") if message.key else None,
        "reason": header(message, REASON_HEADER),
        "detail": header(message, DETAIL_HEADER),
        "source": (
            f"{header(message, SOURCE_TOPIC_HEADER)}"
            f"[{header(message, SOURCE_PARTITION_HEADER)}]"
            f"@{header(message, SOURCE_OFFSET_HEADER)}"
        ),
        "original_bytes": len(message.value or b""),
    }


def write_outputs(report: DemoReport, out_dir: Path) -> None:
    """OUT/<subscriber>.jsonl, OUT/dlq.jsonl, OUT/rejects.jsonl and OUT/audit.jsonl, owner-only.

    A new OUT directory is made ``0700``; one that exists is the user's and keeps its mode.
    """
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for subscriber, records in report.deliveries.items():
        _write_jsonl(out_dir / f"{subscriber}.jsonl", (record.to_json() for record in records))
    _write_jsonl(out_dir / "dlq.jsonl", report.dead_letters)
    _write_jsonl(out_dir / "rejects.jsonl", (reject.as_json() for reject in report.rejects))
    _write_jsonl(out_dir / "audit.jsonl", report.audit)


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also a file an earlier run left readable to others
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True, default=str) + "\n")
