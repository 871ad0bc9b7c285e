"""A small OPA-REST-compatible server backed by the embedded OPA engine.

Enough of OPA's v1 REST API for opa-python-client (policy upload, data upload, rule queries) to
talk to it as to ``openpolicyagent/opa:1.20.2``: it lets the server backend, the conformance
check and the benchmarks run on a machine with nothing installed but the Python package.

    PUT    /v1/policies/<id>   (text/plain Rego)   200 {} | 400 {code, message, errors}
    GET    /v1/policies[/<id>]                     200 {result: ...} | 404
    DELETE /v1/policies/<id>                       200 {} | 404
    PUT    /v1/data/<path>     (JSON)              204
    GET    /v1/data/<path>                         200 {result: value} | 200 {} when undefined
    POST   /v1/data/<path>     {"input": ...}      200 {result: value} | 200 {} when undefined
    DELETE /v1/data/<path>                         204
    GET    /health                                 200 {}

Every change builds a fresh engine from all modules and data and compiles it; only when that
succeeds does it replace the serving engine (one reference swap), so a bad upload leaves the
previous policy serving, as OPA does. Not a production server: no auth, no bundles, loopback.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import opa_bindings

from signalhub.policy.bundle import read_policy_files
from signalhub.policy.engine import opa_messages
from signalhub.types import JSON

__all__ = ["PolicyServer"]

logger = logging.getLogger(__name__)


class _State:
    """Modules, data and the engine built from them; changes are all-or-nothing."""

    def __init__(self) -> None:
        self.modules: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.engine: Any = opa_bindings.OpaEngine()
        self.lock = threading.Lock()

    def change(self, modules: dict[str, str], data: dict[str, Any]) -> None:
        """Compile the new state; on success serve it, else raise and keep the old one."""
        engine = opa_bindings.OpaEngine()
        try:
            for name, text in sorted(modules.items()):
                engine.add_policy(name, text)
            if data:
                engine.add_data(data, "")
            engine.eval_query("true")
        except opa_bindings.OpaError:
            engine.close()
            raise
        self.modules, self.data, self.engine = modules, data, engine


class PolicyServer:
    """Serve the OPA REST subset on ``host:port`` (port 0: a free one) from a thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        state = self._state

        class Handler(_Handler):
            pass

        Handler.state = state
        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def load_dir(self, policies_dir: Path) -> None:
        """Serve the rules (tests excluded) and data files of a policy directory."""
        files = read_policy_files(policies_dir)
        modules = {
            f"policies/{name}": text
            for name, text in files.items()
            if name.endswith(".rego") and not name.endswith("_test.rego")
        }
        data: dict[str, Any] = {}
        for name, text in files.items():
            if name.startswith("data/") and name.endswith(".json"):
                stem = name.removeprefix("data/").removesuffix(".json")
                data.setdefault("signalhub", {})[stem] = json.loads(text)
        with self._state.lock:
            self._state.change(modules, data)

    def start(self) -> PolicyServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="signalhub-policy-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the client's
        # delayed ACK put ~40 ms under every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("policy server: " + format, *args)

    # -- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        kind, rest = self._route()
        if kind == "health":
            self._json(HTTPStatus.OK, {})
        elif kind == "policies":
            self._get_policy(rest)
        elif kind == "data":
            self._eval(rest, None)
        else:
            self._not_found()

    def do_POST(self) -> None:
        kind, rest = self._route()
        if kind != "data":
            self._not_found()
            return
        body = self._body_json()
        if body is _INVALID or (body is not None and not isinstance(body, dict)):
            self._error(HTTPStatus.BAD_REQUEST, "invalid_parameter", "body must be a JSON object")
            return
        self._eval(rest, (body or {}).get("input"))

    def do_PUT(self) -> None:
        kind, rest = self._route()
        if kind == "policies" and rest:
            text = self._body().decode("utf-8", "replace")
            self._change(lambda m, d: m.__setitem__(rest, text), HTTPStatus.OK)
        elif kind == "data":
            value = self._body_json()
            if value is _INVALID:
                self._error(HTTPStatus.BAD_REQUEST, "invalid_parameter", "body is not JSON")
                return
            self._change(lambda m, d: _set_path(d, _segments(rest), value), HTTPStatus.NO_CONTENT)
        else:
            self._not_found()

    def do_DELETE(self) -> None:
        kind, rest = self._route()
        if kind == "policies" and rest in self.state.modules:
            self._change(lambda m, d: m.pop(rest), HTTPStatus.OK)
        elif kind == "data":
            self._change(lambda m, d: _set_path(d, _segments(rest), _DELETE), HTTPStatus.NO_CONTENT)
        else:
            self._not_found()

    # -- handlers --------------------------------------------------------------------------

    def _get_policy(self, policy_id: str) -> None:
        modules = self.state.modules
        if not policy_id:
            listing = [{"id": name, "raw": text} for name, text in sorted(modules.items())]
            self._json(HTTPStatus.OK, {"result": listing})
        elif policy_id in modules:
            self._json(HTTPStatus.OK, {"result": {"id": policy_id, "raw": modules[policy_id]}})
        else:
            self._error(HTTPStatus.NOT_FOUND, "resource_not_found", f"policy {policy_id!r}")

    def _eval(self, path: str, policy_input: JSON) -> None:
        engine = self.state.engine  # one read: a concurrent change swaps the whole engine
        try:
            value = engine.eval_document(".".join(_segments(path)), policy_input)
        except opa_bindings.OpaUndefinedError:
            self._json(HTTPStatus.OK, {})
            return
        except opa_bindings.OpaError as exc:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", exc.message)
            return
        self._json(HTTPStatus.OK, {"result": value})

    def _change(self, edit: Any, success: HTTPStatus) -> None:
        with self.state.lock:
            modules = dict(self.state.modules)
            data = copy.deepcopy(self.state.data)
            edit(modules, data)
            try:
                self.state.change(modules, data)
            except opa_bindings.OpaError as exc:
                errors = [{"code": "rego_error", "message": m} for m in opa_messages(exc.message)]
                self._json(
                    HTTPStatus.BAD_REQUEST,
                    {
                        "code": "invalid_parameter",
                        "message": "error(s) occurred while compiling module(s)",
                        "errors": errors,
                    },
                )
                return
        if success == HTTPStatus.NO_CONTENT:
            self._empty(success)
        else:
            self._json(success, {})

    # -- plumbing --------------------------------------------------------------------------

    def _route(self) -> tuple[str, str]:
        path = unquote(urlsplit(self.path).path)
        if path.rstrip("/") == "/health":
            return "health", ""
        for kind in ("policies", "data"):
            prefix = f"/v1/{kind}"
            if path == prefix or path.startswith(prefix + "/"):
                return kind, path[len(prefix) :].strip("/")
        return "", ""

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _body_json(self) -> Any:
        raw = self._body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return _INVALID

    def _json(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _empty(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _error(self, status: HTTPStatus, code: str, message: str) -> None:
        self._json(status, {"code": code, "message": message})

    def _not_found(self) -> None:
        self._error(HTTPStatus.NOT_FOUND, "resource_not_found", f"no route for {self.path}")


_INVALID = object()
_DELETE = object()


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _set_path(data: dict[str, Any], segments: list[str], value: Any) -> None:
    """Put (or with ``_DELETE`` remove) ``value`` at ``segments`` of the data tree."""
    if not segments:
        data.clear()
        if value is not _DELETE and isinstance(value, dict):
            data.update(value)
        return
    node = data
    for part in segments[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if value is _DELETE:
        node.pop(segments[-1], None)
    else:
        node[segments[-1]] = value
