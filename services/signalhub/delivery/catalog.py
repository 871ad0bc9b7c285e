"""The view-schema catalogue: how a process other than the enforcer learns subscriber schemas.

View schemas are derived per policy decision (which fields are clear, which pseudonymised), so no
reader can know them in advance. The enforcer publishes each new view schema once to the topic
``schemas.views`` (key: fingerprint hex, value: the schema as JSON) *before* the first delivery
that uses it. :class:`ViewSchemaCatalog` reads that topic from the beginning into a
:class:`~signalhub.schema.registry.SchemaRegistry`, and reads on when a delivery names a
fingerprint it has not seen yet: the schema is then on the topic, or about to be — the enforcer
hands the schema and the delivery to the producer in one batch, but two topics become readable
in no guaranteed order, so a reader may see the delivery a moment before the schema. It keeps
reading for up to ``schema_wait_s`` before it calls the schema unknown.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.errors import SchemaError, UnknownSchemaError
from signalhub.schema import codec
from signalhub.schema.registry import SchemaRegistry
from signalhub.types import AvroSchema, Record
from signalhub.wire import VIEW_SCHEMAS_TOPIC

if TYPE_CHECKING:
    from kafka import KafkaConsumer

__all__ = ["ViewSchemaCatalog"]

logger = logging.getLogger(__name__)


def _public(schema: Any) -> Any:
    """The schema without fastavro's private ``__`` keys (a parsed schema may have been dumped)."""
    if isinstance(schema, dict):
        return {k: _public(v) for k, v in schema.items() if not str(k).startswith("__")}
    if isinstance(schema, list):
        return [_public(item) for item in schema]
    return schema


class ViewSchemaCatalog:
    """A registry kept up to date from ``schemas.views``; decodes deliveries with it.

    Thread-safe: the pull API decodes from several request threads. Reading resumes where the
    last refresh stopped (registration is idempotent, so re-reading would only cost time).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        registry: SchemaRegistry,
        *,
        topic: str = VIEW_SCHEMAS_TOPIC,
        idle_ms: int = 300,
        schema_wait_s: float = 5.0,
    ) -> None:
        self.registry = registry
        self.schema_wait_s = schema_wait_s
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.idle_ms = idle_ms
        self._lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._assigned = 0
        #: Schemas registered from the topic so far.
        self.loaded = 0

    def refresh(self) -> int:
        """Read ``schemas.views`` on from where the last read stopped; returns schemas added."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> int:
        consumer = self._consumer
        if consumer is None:
            consumer = self._consumer = open_consumer(
                self.bootstrap_servers, client_id="signalhub-view-catalog"
            )
        partitions = consumer.partitions_for_topic(self.topic) or set()
        if len(partitions) != self._assigned:  # first read, or the topic appeared / grew
            positions = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
            self._assigned = len(assign_topic(consumer, self.topic, positions))
        if not self._assigned:
            return 0
        added = 0
        for record in drain(consumer, idle_ms=self.idle_ms):
            added += self._register(record)
        self.loaded += added
        return added

    def _register(self, record: Any) -> int:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            schema: AvroSchema = _public(json.loads(record.value))
            fingerprint = self.registry.register(schema)
        except (ValueError, TypeError, SchemaError) as exc:
            # One bad entry must not stop the catalogue; the deliveries that need it will fail
            # to decode and say so.
            logger.warning("skipping unreadable view schema at %s: %s", where, exc)
            return 0
        key = bytes(record.key or b"").decode("utf-8", "replace")
        if key and key != fingerprint.hex():
            logger.warning(
                "view schema at %s is keyed %s but has fingerprint %s; registered by content",
                where,
                key,
                fingerprint.hex(),
            )
        return 1

    def decode(self, data: bytes) -> tuple[AvroSchema, Record]:
        """Decode one delivery; on an unknown fingerprint read the catalogue on and retry, for
        up to ``schema_wait_s`` (see the module docstring).

        Raises :class:`UnknownSchemaError` when the schema is still unknown then, and
        :class:`~signalhub.errors.DecodeError` for bytes that are not a framed record.
        """
        try:
            return codec.decode(self.registry, data)
        except UnknownSchemaError:
            deadline = time.monotonic() + self.schema_wait_s
        while True:
            self.refresh()
            try:
                return codec.decode(self.registry, data)
            except UnknownSchemaError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.1)

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
                self._assigned = 0

    def __enter__(self) -> ViewSchemaCatalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
