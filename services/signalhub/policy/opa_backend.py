"""The OPA-server backend: the same decisions, asked over OPA's REST API with opa-python-client.

Production runs ``openpolicyagent/opa:1.20.2`` beside the hub (``docker-compose.yml``); the
embedded engine and the server run the same OPA version, and ``signalhub policy conformance``
proves they agree on a corpus. Like the embedded engine this backend fails closed: a transport
error, a timeout, an HTTP error or a missing ``result`` (an undefined document) raises
:class:`~signalhub.errors.PolicyError`, which the enforcer turns into a deny and a parked signal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opa_client import OpaClient

from signalhub.errors import ConfigError, PolicyError
from signalhub.policy.decision import Decision, parse_decisions, subscription_ids
from signalhub.types import JSON

__all__ = ["OpaServerPolicyEngine", "opa_client_for", "upload_policy"]

#: The decisions document as opa-python-client addresses it: package path and rule.
PACKAGE = "signalhub.sharing"
RULE = "decisions"
#: Data files ``data/<name>.json`` live at ``data.signalhub.<name>`` (as in the embedded engine).
DATA_ROOT = "signalhub"


def opa_client_for(url: str, *, timeout_s: float = 2.0) -> OpaClient:
    """An :class:`OpaClient` for ``http(s)://host:port``; no retries (a retry is the parker's)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"SIGNALHUB_OPA_URL {url!r} is not an http(s)://host:port URL")
    port = parts.port or (443 if parts.scheme == "https" else 8181)
    return OpaClient(
        host=parts.hostname,
        port=port,
        ssl=parts.scheme == "https",
        retries=0,
        timeout=timeout_s,
    )


def upload_policy(client: OpaClient, files: Mapping[str, str]) -> None:
    """Put the rules (tests excluded) and data of a policy on the server.

    ``files`` maps relative paths (``signalhub/sharing/sharing.rego``, ``data/agreements.json``)
    to their text, as in a :class:`~signalhub.policy.bundle.PolicyBundle`. Rules are uploaded as
    Rego v1 as they are (``rego_compat=False``: no silent rewriting of a security policy).
    """
    try:
        for name, text in sorted(files.items()):
            if name.endswith(".rego") and not name.endswith("_test.rego"):
                client.update_policy_from_string(text, f"policies/{name}", rego_compat=False)
        for name, text in sorted(files.items()):
            if name.startswith("data/") and name.endswith(".json") and name.count("/") == 1:
                stem = name.removeprefix("data/").removesuffix(".json")
                client.update_or_create_data(json.loads(text), f"{DATA_ROOT}/{stem}")
    except Exception as exc:
        raise PolicyError(f"the OPA server refused the policy: {_describe(exc)}") from exc


class OpaServerPolicyEngine:
    """A :class:`~signalhub.policy.engine.PolicyEngine` that asks an OPA server, once per signal."""

    def __init__(self, client: OpaClient, version: str) -> None:
        self._client = client
        self.version = version

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        ids = subscription_ids(policy_input)
        if not isinstance(policy_input, dict):
            raise PolicyError("policy input is not an object")
        try:
            answer = self._client.query_rule(policy_input, PACKAGE, RULE)
        except Exception as exc:
            raise PolicyError(
                f"OPA server query failed (data.{PACKAGE}.{RULE}, {self.version}) — "
                f"{_describe(exc)} — the signal is denied and parked"
            ) from exc
        if not isinstance(answer, dict) or "result" not in answer:
            raise PolicyError(
                f"data.{PACKAGE}.{RULE} is undefined on the OPA server ({self.version}) — "
                "the signal is denied and parked"
            )
        return parse_decisions(answer["result"], ids, self.version)

    def close(self) -> None:
        self._client.close_connection()


def _describe(exc: Exception) -> str:
    message: Any = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message)
