"""The policy engine: the rules and data loaded into the embedded OPA engine, asked per signal.

The rules live in Rego (``policies/``) and the covenant agreements in JSON (``policies/data/``),
so a security officer can read and test them without reading Python. This module loads them into
the embedded OPA engine, asks for one decision per subscription and checks the answer with
:func:`~signalhub.policy.decision.parse_decisions`. It fails closed: any engine error, an
undefined result, a missing or malformed entry raises :class:`PolicyError`, which the enforcer
turns into a deny (and parks the signal).

An engine is built from a :class:`~signalhub.policy.bundle.PolicyBundle` and stamps its decisions
with the bundle's version; it never hashes the files itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import opa_bindings

from signalhub.errors import PolicyError
from signalhub.policy.bundle import PolicyBundle, bundle_from_dir, read_policy_files, rules_and_data
from signalhub.policy.decision import Decision, build_input, parse_decisions, subscription_ids
from signalhub.types import JSON

__all__ = [
    "DECISIONS_DOCUMENT",
    "EmbeddedPolicyEngine",
    "PolicyEngine",
    "PolicySource",
    "check_policies",
    "load_opa_engine",
    "module_name",
    "opa_messages",
    "policy_source",
]

#: The document the enforcer evaluates: an object keyed by subscription id.
DECISIONS_DOCUMENT = "signalhub.sharing.decisions"
#: Data files go under this document, one key per file stem.
_DATA_ROOT = "signalhub"
_OPA_LOCATION = re.compile(r"^\S+:\d+: rego_\w+: .*$", re.MULTILINE)

#: A policy directory, or its files (relative path -> text) as a bundle carries them.
PolicySource = Path | Mapping[str, str]


class PolicyEngine(Protocol):
    """Anything that decides for all subscriptions at once (embedded engine, OPA server, memo)."""

    @property
    def version(self) -> str:
        """``sha256:<16 hex>`` of the policy files; stamped on every decision."""
        ...

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        """Decisions keyed by subscription id; :class:`PolicyError` on any failure."""
        ...


def policy_source(policies: PolicySource) -> tuple[str, dict[str, str]]:
    """The label OPA reports files under (the directory's name) and the files themselves."""
    if isinstance(policies, Path):
        return policies.name, read_policy_files(policies)
    return "policies", dict(policies)


def module_name(label: str, name: str) -> str:
    """The name OPA reports in messages: ``policies/<relative path>``, so file:line is findable."""
    return f"{label}/{name}"


def _add_file(engine: Any, label: str, name: str, text: str) -> None:
    """One file into an OPA engine: a Rego module, or a data document under ``signalhub``."""
    if name.endswith(".rego"):
        engine.add_policy(module_name(label, name), text)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{module_name(label, name)}:{exc.lineno}"
        raise PolicyError(f"{where}: invalid JSON: {exc.msg} — fix the data file") from exc
    engine.add_data(data, f"{_DATA_ROOT}.{Path(name).stem}")


def load_opa_engine(files: Mapping[str, str], *, label: str = "policies") -> Any:
    """A fresh OPA engine holding ``files``; :class:`PolicyError` on a parse or data error."""
    engine = opa_bindings.OpaEngine()
    try:
        for name, text in sorted(files.items()):
            _add_file(engine, label, name, text)
    except opa_bindings.OpaError as exc:
        engine.close()
        raise PolicyError(f"cannot load policy — {exc.message} — fix the file and retry") from exc
    except PolicyError:
        engine.close()
        raise
    return engine


class EmbeddedPolicyEngine:
    """The policy evaluated in-process by OPA (the same version as the production OPA server).

    One engine is loaded once and reused: creating one per decision costs ~5 ms, reusing it
    ~0.4 ms. The engine serialises evaluations with its own lock, so sharing it is safe; the
    enforcer calls :meth:`decide` from its one event-loop thread anyway.
    """

    def __init__(self, engine: Any, version: str, *, document: str = DECISIONS_DOCUMENT) -> None:
        self._engine = engine
        self._document = document
        self.version = version

    @classmethod
    def from_dir(cls, path: Path, *, document: str = DECISIONS_DOCUMENT) -> EmbeddedPolicyEngine:
        """Load every ``*.rego`` except ``*_test.rego`` plus ``data/*.json`` under ``path``."""
        return cls.from_bundle(bundle_from_dir(path), document=document, label=path.name)

    @classmethod
    def from_bundle(
        cls,
        bundle: PolicyBundle,
        *,
        document: str = DECISIONS_DOCUMENT,
        label: str = "policies",
    ) -> EmbeddedPolicyEngine:
        """Load the rules and data of ``bundle``; its decisions carry ``bundle.version``.

        The version is taken as the bundle states it: a bundle is either made from files just now
        or :meth:`~signalhub.policy.bundle.PolicyBundle.verified` when read back. The policy is
        compiled here (by one probe evaluation), so a type error fails at start-up with its
        file:line rather than on the first signal.
        """
        engine = load_opa_engine(rules_and_data(bundle.files), label=label)
        probe = build_input("probe", "probe", {}, [], date(2000, 1, 1))
        try:
            engine.eval_document(document, probe)
        except opa_bindings.OpaError as exc:
            engine.close()
            raise PolicyError(
                f"cannot compile policy {label} {bundle.version} (data.{document}) — "
                f"{exc.message} — run `signalhub policy check`, fix the file and retry"
            ) from exc
        return cls(engine, bundle.version, document=document)

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        try:
            result = self._engine.eval_document(self._document, policy_input)
        except opa_bindings.OpaError as exc:
            raise PolicyError(
                f"policy evaluation failed (data.{self._document}, {self.version}) — "
                f"{exc.message} — the signal is denied and parked"
            ) from exc
        return parse_decisions(result, subscription_ids(policy_input), self.version)

    def evaluate(self, document: str, policy_input: JSON) -> JSON:
        """The value of another document of the policy, e.g. ``signalhub.bundling.decision``.

        The same engine and policy version as :meth:`decide`; an engine error or an undefined
        document raises :class:`PolicyError` (the caller fails closed).
        """
        try:
            result: JSON = self._engine.eval_document(document, policy_input)
        except opa_bindings.OpaError as exc:
            raise PolicyError(
                f"policy evaluation failed (data.{document}, {self.version}) — {exc.message}"
            ) from exc
        if result is None:
            raise PolicyError(f"data.{document} is undefined in policy {self.version}")
        return result

    def close(self) -> None:
        """Release the Go engine (also done when the object is collected)."""
        self._engine.close()


def check_policies(policies: PolicySource) -> list[str]:
    """Parse and type-check the policy (tests included); one message per problem, with file:line.

    ``policies`` is a directory or a bundle's files. An empty list means it loads and compiles.
    Unlike loading an engine it goes on after the first bad file, to report them all.
    """
    try:
        label, files = policy_source(policies)
    except PolicyError as exc:
        return [str(exc)]
    problems: list[str] = []
    engine = opa_bindings.OpaEngine()
    try:
        for name, text in sorted(files.items()):
            try:
                _add_file(engine, label, name, text)
            except opa_bindings.OpaError as exc:
                problems.extend(opa_messages(exc.message))
            except PolicyError as exc:
                problems.append(str(exc))
        if not problems:
            try:
                engine.eval_query("true")
            except opa_bindings.OpaError as exc:
                problems.extend(opa_messages(exc.message))
    finally:
        engine.close()
    return problems


def opa_messages(message: str) -> list[str]:
    """Split OPA's "N errors occurred: a:1: ...\\n b:2: ..." into one line per error."""
    found = _OPA_LOCATION.findall(message.replace("occurred: ", "occurred:\n"))
    return found or [message]
