"""Topic administration: create the hub's topics, on tansu and Apache Kafka alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from signalhub.broker.clients import KafkaConnection, new_admin
from signalhub.errors import BrokerError

__all__ = ["create_topics"]

#: kafka-python error code for "topic already exists" (CreateTopics).
_TOPIC_ALREADY_EXISTS = 36


def create_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    *,
    timeout_s: float = 10.0,
) -> None:
    """Create topics with ``partitions`` partitions; a topic that already exists is not an error.

    Works against tansu and Apache Kafka alike (replication factor: the broker's default).
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    timeout_ms = int(timeout_s * 1000)
    try:
        admin = new_admin(
            KafkaConnection(bootstrap_servers),
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            client_id="signalhub-admin",
        )
    except Exception as exc:
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap_servers}: {exc} — is the broker running?"
        ) from exc
    try:
        spec: dict[str, Any] = {"num_partitions": partitions, "replication_factor": -1}
        if config:
            spec["configs"] = dict(config)
        result = admin.create_topics(
            {name: dict(spec) for name in wanted}, timeout_ms=timeout_ms, raise_errors=False
        )
    except Exception as exc:
        raise BrokerError(f"creating topics on {bootstrap_servers} failed: {exc}") from exc
    finally:
        admin.close()
    failed = [
        f"{topic['name']} (error {topic['error_code']})"
        for topic in result.get("topics", [])
        if topic["error_code"] not in (0, _TOPIC_ALREADY_EXISTS)
    ]
    if failed:
        raise BrokerError(
            f"Kafka at {bootstrap_servers} refused to create {', '.join(failed)} — "
            "check the partition count and the topic configuration"
        )
