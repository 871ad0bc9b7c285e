"""Delivery: how subscribers receive what the enforcer wrote to ``deliveries.<subscriber>``.

Three channels, one record shape (:meth:`DeliveredRecord.to_json`), at-least-once everywhere
(de-duplicate on ``delivery_id``):

- Kafka: the subscriber reads its topic itself (:func:`read_deliveries` decodes it);
- pull: ``GET /v1/deliveries`` with a bearer token (:func:`pull_app`);
- webhook: signed POSTs (:class:`WebhookPusher`, :func:`verify_signature` for receivers).

View schemas are learnt from ``schemas.views`` by :class:`ViewSchemaCatalog`; credentials live
in :class:`SubscriberSecrets`. See ``docs/delivery.md``.
"""

from __future__ import annotations

from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.pull_api import pull_app
from signalhub.delivery.reader import DeliveredRecord, decode_delivery, read_deliveries
from signalhub.delivery.secrets import SubscriberSecrets
from signalhub.delivery.webhook import (
    Outcome,
    RetryPolicy,
    WebhookPusher,
    sign,
    verify_signature,
    webhook_pushers,
)

__all__ = [
    "DeliveredRecord",
    "Outcome",
    "RetryPolicy",
    "SubscriberSecrets",
    "ViewSchemaCatalog",
    "WebhookPusher",
    "decode_delivery",
    "pull_app",
    "read_deliveries",
    "sign",
    "verify_signature",
    "webhook_pushers",
]
