"""Pull API: a subscriber fetches its own deliveries over HTTP with a bearer token.

``GET /v1/deliveries?after=<cursor>&limit=N`` with ``Authorization: Bearer <token>`` answers
``{"deliveries": [...], "next": "<cursor>"}``. The token alone decides the subscriber, and so the
topic (``deliveries.<subscriber>``): there is no parameter naming a subscriber or a topic, so no
request can reach another subscriber's records. The cursor is opaque to clients (base64url of
the next offset per partition); passing ``next`` back returns the following page, without loss
or repeat. Without ``after`` reading starts at the beginning. A request waits at most about
``wait_ms`` for data, so clients can poll in a loop.

This is the authenticated path for subscribers on the embedded broker, which has no ACLs.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Collection

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from signalhub.broker.reader import assign_topic, drain, open_consumer
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import decode_delivery
from signalhub.delivery.secrets import SubscriberSecrets
from signalhub.errors import BrokerError, RecordError, SchemaError
from signalhub.wire import deliveries_topic

__all__ = ["decode_cursor", "encode_cursor", "pull_app"]

logger = logging.getLogger(__name__)

_DEFAULT_LIMIT = 100
_IDLE_MS = 150


class _BadCursorError(ValueError):
    """A cursor this API did not make."""


def encode_cursor(positions: dict[int, int]) -> str:
    """The opaque cursor for "continue at these offsets" (partition -> next offset)."""
    text = json.dumps({"v": 1, "p": {str(p): o for p, o in sorted(positions.items())}})
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> dict[int, int]:
    """Partition -> next offset from a cursor made by :func:`encode_cursor` (ValueError if not)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        positions = {int(p): int(o) for p, o in data["p"].items()}
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _BadCursorError("not a cursor from this API") from exc
    if data.get("v") != 1 or any(p < 0 or o < 0 for p, o in positions.items()):
        raise _BadCursorError("not a cursor from this API")
    return positions


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def pull_app(
    bootstrap_servers: str,
    secrets: SubscriberSecrets,
    catalog: ViewSchemaCatalog,
    *,
    allowed_subscribers: Collection[str] | None = None,
    max_limit: int = 500,
    wait_ms: int = 1000,
) -> Starlette:
    """The pull API as a Starlette app (mount it or serve it with uvicorn).

    ``allowed_subscribers``, when given, are the only subscribers served (those with a ``pull``
    subscription); a valid token of anyone else gets 403.
    """

    def authenticate(request: Request) -> str | JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "bearer token required", **{"WWW-Authenticate": "Bearer"})
        subscriber = secrets.subscriber_for_token(token.strip())
        if subscriber is None:
            return _error(
                401, "invalid token", **{"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        if allowed_subscribers is not None and subscriber not in allowed_subscribers:
            return _error(403, "this subscriber has no pull subscription")
        return subscriber

    def deliveries(request: Request) -> JSONResponse:
        subscriber = authenticate(request)
        if isinstance(subscriber, JSONResponse):
            return subscriber
        try:
            limit = int(request.query_params.get("limit", _DEFAULT_LIMIT))
            after = request.query_params.get("after")
            positions = decode_cursor(after) if after else {}
        except ValueError:
            return _error(400, "invalid 'after' cursor or 'limit' — pass back 'next' unchanged")
        if not 1 <= limit <= max_limit:
            return _error(400, f"'limit' must be between 1 and {max_limit}")
        try:
            page, following = _read_page(subscriber, positions, limit)
        except SchemaError:
            logger.exception("pull for %s: a delivery's schema is unknown", subscriber)
            return _error(
                503, "a delivery cannot be decoded yet — retry later", **{"Retry-After": "5"}
            )
        except (BrokerError, RecordError):
            logger.exception("pull for %s failed", subscriber)
            return _error(503, "deliveries are unavailable — retry later", **{"Retry-After": "5"})
        logger.info("pull for %s: %d deliveries", subscriber, len(page))
        return JSONResponse({"deliveries": page, "next": encode_cursor(following)})

    def _read_page(
        subscriber: str, positions: dict[int, int], limit: int
    ) -> tuple[list[object], dict[int, int]]:
        following = dict(positions)
        consumer = open_consumer(bootstrap_servers, client_id=f"signalhub-pull-{subscriber}")
        page: list[object] = []
        try:
            if not assign_topic(consumer, deliveries_topic(subscriber), positions):
                return page, following
            for message in drain(
                consumer, idle_ms=_IDLE_MS, first_wait_ms=wait_ms, max_records=limit
            ):
                page.append(decode_delivery(catalog, message).to_json())
                following[message.partition] = message.offset + 1
        finally:
            consumer.close()
        return page, following

    return Starlette(routes=[Route("/v1/deliveries", deliveries, methods=["GET"])])
