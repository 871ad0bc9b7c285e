"""The HTTP ingest endpoint: agencies POST their records to ``/ingest/<connector>``.

The body is one JSON object or an array of them, in the agency's own vocabulary; each is mapped
by the connector's definition exactly like a file record. Every answer is JSON:

- 200 ``{"published": [...], "rejected": []}`` — all records became signals (durable: flushed);
- 207 — some records were rejected: ``rejected`` lists ``{"ref", "code", "reason"}`` (the
  reference is the index in the array; the record itself is not echoed back);
- 401 — no ``Authorization: Bearer <token>`` header;
- 403 — the token is not this connector's, or no token is configured for it;
- 404 — no connector of that name; 413 — the body is larger than ``max_body_bytes``;
- 422 — the body is not JSON, nests deeper than :data:`~signalhub.connector.sources.MAX_JSON_DEPTH`,
  holds text that is not Unicode, is not an object or array of objects, or every record was
  rejected. Nothing of a body refused as a whole is published.

Why the depth is counted before parsing: the parser recurses once per level, and a body of a
million ``[`` would exhaust the stack inside the server (an unhandled 500) instead of being
refused as what it is.

Why tokens are compared with :func:`hmac.compare_digest`: the time a comparison takes must not
tell an attacker how much of a guessed token was right. Tokens come from the environment
variable each definition names (``token_env``), read once by :func:`tokens_from_env` at start-up.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from signalhub.connector.definition import ConnectorDefinition
from signalhub.connector.ratelimit import RateLimiter
from signalhub.connector.runner import ConnectorRunner, Published, Reject
from signalhub.connector.sources import MAX_JSON_DEPTH, holds_lone_surrogate, json_depth
from signalhub.errors import BrokerError

__all__ = ["create_ingest_app", "ingest_routes", "tokens_from_env"]

logger = logging.getLogger(__name__)


def tokens_from_env(
    definitions: Mapping[str, ConnectorDefinition], environ: Mapping[str, str] | None = None
) -> dict[str, SecretStr]:
    """The ingest token of every connector whose ``token_env`` variable is set and not empty."""
    env = os.environ if environ is None else environ
    tokens: dict[str, SecretStr] = {}
    for name, definition in definitions.items():
        value = env.get(definition.token_env or "", "")
        if definition.token_env and value.strip():
            tokens[name] = SecretStr(value.strip())
    return tokens


def _error(status: int, error: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


class _IngestEndpoint:
    def __init__(
        self,
        runners: Mapping[str, ConnectorRunner],
        tokens: Mapping[str, SecretStr],
        max_body_bytes: int,
        refusal: Callable[[], str | None] | None = None,
    ) -> None:
        self._runners = runners
        self._tokens = {name: token.get_secret_value().encode() for name, token in tokens.items()}
        self._max_body_bytes = max_body_bytes
        self._refusal = refusal
        #: Per token (one per connector): only connectors whose definition sets a limit.
        self._limits = {
            name: RateLimiter(runner.definition.requests_per_minute, 60.0)
            for name, runner in runners.items()
            if runner.definition.requests_per_minute is not None
        }

    async def handle(self, request: Request) -> JSONResponse:
        name = request.path_params["connector"]
        runner = self._runners.get(name)
        if runner is None:
            return _error(404, "unknown_connector", f"no connector named {name!r}")
        denied = self._authorise(request, name)
        if denied is not None:
            return denied
        limited = self._limited(name)
        if limited is not None:
            return limited
        reason = self._refusal() if self._refusal is not None else None
        if reason is not None:
            return _error(503, "not_accepting", reason, **{"Retry-After": "5"})
        body = await self._read_body(request)
        if body is None:
            return _error(
                413,
                "too_large",
                f"the body is larger than {self._max_body_bytes} bytes — send fewer records",
            )
        records = _parse_records(body)
        if isinstance(records, str):
            return _error(422, "bad_body", records)
        try:
            outcomes = await run_in_threadpool(runner.handle_records, records, "http")
        except BrokerError as exc:  # nothing of the batch is acknowledged: the sender retries
            logger.warning("ingest %s: the broker did not take the batch: %s", name, exc)
            return _error(
                503,
                "broker_unavailable",
                "the hub's broker did not acknowledge the records; none is accepted — retry",
                **{"Retry-After": "5"},
            )
        return _outcome_response(outcomes)

    def _authorise(self, request: Request, name: str) -> JSONResponse | None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _error(
                401,
                "unauthenticated",
                "send 'Authorization: Bearer <token>' with this connector's ingest token",
                **{"WWW-Authenticate": 'Bearer realm="signalhub-ingest"'},
            )
        expected = self._tokens.get(name)
        if expected is None:
            return _error(
                403,
                "ingest_disabled",
                f"no ingest token is configured for {name!r} — set its token_env variable",
            )
        if not hmac.compare_digest(presented.strip().encode(), expected):
            logger.warning("ingest %s: refused a request with a wrong token", name)
            return _error(403, "forbidden", f"this token may not ingest for {name!r}")
        return None

    def _limited(self, name: str) -> JSONResponse | None:
        limiter = self._limits.get(name)
        wait = limiter.acquire(name) if limiter is not None else None
        if limiter is None or wait is None:
            return None
        return _error(
            429,
            "rate_limited",
            f"more than {limiter.limit} requests a minute for {name!r} — wait and retry",
            **{"Retry-After": str(int(wait))},
        )

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None as soon as it is known to exceed the limit (never read it all)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


def _parse_records(body: bytes) -> list[dict[str, Any]] | str:
    """The records of a body, or a message saying why there are none."""
    too_deep = (
        f"the body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep — "
        "send flat records (an array of objects)"
    )
    try:
        text = body.decode("utf-8")
        if json_depth(text) > MAX_JSON_DEPTH:
            return too_deep
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return (
            f"the body is not valid JSON (line {exc.lineno}, column {exc.colno}) — "
            "send an object or an array of objects"
        )
    except UnicodeDecodeError:
        return "the body is not UTF-8 text — send JSON encoded as UTF-8"
    except RecursionError:  # the depth count above should make this unreachable
        return too_deep
    records = value if isinstance(value, list) else [value]
    if not records:
        return "the body is an empty array — send at least one record"
    bad = [index for index, record in enumerate(records) if not isinstance(record, dict)]
    if bad:
        return f"element(s) {bad[:10]} are not JSON objects — every record must be an object"
    bad = [index for index, record in enumerate(records) if holds_lone_surrogate(record)]
    if bad:
        return (
            f"element(s) {bad[:10]} escape half a surrogate pair, which is not Unicode text — "
            "send the characters themselves"
        )
    return records


def _outcome_response(outcomes: list[Published | Reject]) -> JSONResponse:
    published = [
        {"ref": o.ref, "signal_id": o.signal_id, "topic": o.topic}
        for o in outcomes
        if isinstance(o, Published)
    ]
    rejected = [
        {"ref": o.ref, "code": o.code, "reason": o.reason}
        for o in outcomes
        if isinstance(o, Reject)
    ]
    status = 200 if not rejected else (207 if published else 422)
    body: dict[str, Any] = {"published": published, "rejected": rejected}
    if status == 422:
        body |= {"error": "all_rejected", "message": "no record was accepted — see 'rejected'"}
    return JSONResponse(body, status_code=status)


def ingest_routes(
    runners: Mapping[str, ConnectorRunner],
    tokens: Mapping[str, SecretStr],
    *,
    max_body_bytes: int = 1024 * 1024,
    refusal: Callable[[], str | None] | None = None,
) -> list[Route]:
    """The ingest route, for mounting into the hub's own HTTP app.

    ``refusal`` says why the hub cannot take signals right now (the broker is down or came back
    empty); while it returns a reason, every request gets 503 with it and nothing is published.
    """
    endpoint = _IngestEndpoint(runners, tokens, max_body_bytes, refusal)
    return [Route("/ingest/{connector}", endpoint.handle, methods=["POST"])]


def create_ingest_app(
    runners: Mapping[str, ConnectorRunner],
    tokens: Mapping[str, SecretStr],
    *,
    max_body_bytes: int = 1024 * 1024,
    refusal: Callable[[], str | None] | None = None,
) -> Starlette:
    """A Starlette app serving ``POST /ingest/<connector>`` for the given runners.

    ``runners`` maps a connector name to the runner that maps and publishes its records (its
    reject sink also receives every HTTP reject); ``tokens`` maps a connector name to its bearer
    token (see :func:`tokens_from_env`). A connector without a token refuses every request.
    """
    routes = ingest_routes(runners, tokens, max_body_bytes=max_body_bytes, refusal=refusal)
    return Starlette(routes=routes)
