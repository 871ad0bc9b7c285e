"""Sharing decisions: which subscriptions may receive a signal, and which of its fields.

The rules live in Rego (``policies/``) and the covenant agreements in JSON (``policies/data/``),
so a security officer can read and test them without reading Python. This module loads them into
the embedded OPA engine, asks for one decision per subscription, and turns the answer into
:class:`Decision` values. It fails closed: any engine error, an undefined result, a missing or
malformed entry raises :class:`PolicyError`, which the enforcer turns into a deny (and parks the
signal). A decision is a pure function of the input and the policy version, so
:class:`MemoisedPolicy` can reuse it for every identical input.

Layout read by :meth:`EmbeddedPolicyEngine.from_dir`::

    policies/**/*.rego        policy modules (``*_test.rego`` are tests, not loaded for decisions)
    policies/data/<name>.json data document placed at ``data.signalhub.<name>``
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import opa_bindings

from signalhub.errors import PolicyError
from signalhub.types import JSON

__all__ = [
    "DECISIONS_DOCUMENT",
    "Decision",
    "EmbeddedPolicyEngine",
    "MemoisedPolicy",
    "PolicyEngine",
    "RegoCoverage",
    "build_input",
    "check_policies",
    "parse_decisions",
    "policy_files",
    "policy_version",
    "run_rego_tests",
    "subscription_ids",
]

#: The document the enforcer evaluates: an object keyed by subscription id.
DECISIONS_DOCUMENT = "signalhub.sharing.decisions"
#: Data files go under this document, one key per file stem.
_DATA_ROOT = "signalhub"
#: A pseudonym domain names a key derivation; keep it to a safe alphabet.
_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\b", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_OPA_LOCATION = re.compile(r"^\S+:\d+: rego_\w+: .*$", re.MULTILINE)


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one subscription, stamped with the policy version that made it."""

    allow: bool
    fields: tuple[str, ...]
    pseudonymise: tuple[str, ...]
    reasons: tuple[str, ...]
    policy_version: str
    domain: str
    legal_basis: str
    #: Fields delivered generalised instead of in clear: {field: "age_band" | "postcode_area" |
    #: "neighbourhood"} (optional in the policy's answer; see docs/pseudonymisation.md).
    generalise: Mapping[str, str] = field(default_factory=dict, hash=False)


class PolicyEngine(Protocol):
    """Anything that decides for all subscriptions at once (embedded engine, OPA server, memo)."""

    @property
    def version(self) -> str:
        """``sha256:<16 hex>`` of the policy files; stamped on every decision."""
        ...

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        """Decisions keyed by subscription id; :class:`PolicyError` on any failure."""
        ...


def policy_files(policies_dir: Path, *, tests: bool = False) -> list[Path]:
    """The files that make up the policy, sorted: Rego modules and data JSON.

    With ``tests`` the ``*_test.rego`` modules are included (for running the Rego tests).
    """
    if not policies_dir.is_dir():
        raise PolicyError(f"policy directory {policies_dir} does not exist — check SIGNALHUB_HOME")
    rego = [p for p in policies_dir.rglob("*.rego") if tests or not p.name.endswith("_test.rego")]
    data = list((policies_dir / "data").glob("*.json"))
    return sorted(rego + data)


def policy_version(policies_dir: Path, files: Iterable[Path]) -> str:
    """``sha256:<16 hex>`` over the sorted relative paths and contents of the policy files."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(policies_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()[:16]


def _module_name(policies_dir: Path, path: Path) -> str:
    """The name OPA reports in messages: ``policies/<relative path>``, so file:line is findable."""
    return (Path(policies_dir.name) / path.relative_to(policies_dir)).as_posix()


def _load_engine(policies_dir: Path, files: list[Path]) -> Any:
    """A fresh OPA engine holding these files; :class:`PolicyError` on a parse or data error."""
    engine = opa_bindings.OpaEngine()
    try:
        for path in files:
            if path.suffix == ".rego":
                engine.add_policy(_module_name(policies_dir, path), path.read_text("utf-8"))
            else:
                engine.add_data(_read_json(policies_dir, path), f"{_DATA_ROOT}.{path.stem}")
    except opa_bindings.OpaError as exc:
        engine.close()
        raise PolicyError(f"cannot load policy — {exc.message} — fix the file and retry") from exc
    except PolicyError:
        engine.close()
        raise
    return engine


def _read_json(policies_dir: Path, path: Path) -> JSON:
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        where = f"{_module_name(policies_dir, path)}:{exc.lineno}"
        raise PolicyError(f"{where}: invalid JSON: {exc.msg} — fix the data file") from exc


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
        """Load every ``*.rego`` except ``*_test.rego`` plus ``data/*.json`` under ``path``.

        The policy is compiled here (by one probe evaluation), so a type error fails at start-up
        with its file:line rather than on the first signal.
        """
        files = policy_files(path)
        engine = _load_engine(path, files)
        loaded = cls(engine, policy_version(path, files), document=document)
        probe = build_input("probe", "probe", {}, [], date(2000, 1, 1))
        try:
            engine.eval_document(document, probe)
        except opa_bindings.OpaError as exc:
            engine.close()
            raise PolicyError(
                f"cannot compile policy {path} (data.{document}) — {exc.message} — "
                "run `signalhub policy check`, fix the file and retry"
            ) from exc
        return loaded

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


def subscription_ids(policy_input: JSON) -> list[str]:
    """The subscription ids the input asks about; :class:`PolicyError` when it has none."""
    try:
        return [str(sub["id"]) for sub in policy_input["subscriptions"]]
    except (KeyError, TypeError) as exc:
        raise PolicyError("policy input has no subscriptions list with ids") from exc


def parse_decisions(result: JSON, ids: Iterable[str], version: str) -> dict[str, Decision]:
    """Check the policy's answer and turn it into :class:`Decision` values, one per id.

    The answer must be an object holding a well-formed entry for every requested subscription id;
    entries for ids not asked about are ignored. A deny never carries fields.
    """
    if not isinstance(result, dict):
        raise PolicyError(f"policy returned {type(result).__name__}, expected an object")
    decisions: dict[str, Decision] = {}
    for sub_id in ids:
        entry = result.get(sub_id)
        if entry is None:
            raise PolicyError(f"policy returned no decision for subscription {sub_id}")
        decisions[sub_id] = _parse_entry(sub_id, entry, version)
    return decisions


def _parse_entry(sub_id: str, entry: JSON, version: str) -> Decision:
    if not isinstance(entry, dict):
        raise PolicyError(f"decision for subscription {sub_id} is not an object")
    allow = entry.get("allow")
    domain = entry.get("domain")
    legal_basis = entry.get("legal_basis")
    if not isinstance(allow, bool):
        raise PolicyError(f"decision for subscription {sub_id}: allow is not a boolean")
    if not isinstance(domain, str) or not isinstance(legal_basis, str):
        raise PolicyError(f"decision for subscription {sub_id}: domain/legal_basis not strings")
    fields = _strings(sub_id, entry, "fields")
    pseudonymise = _strings(sub_id, entry, "pseudonymise")
    reasons = _strings(sub_id, entry, "reasons")
    if allow:
        if not _DOMAIN.match(domain):
            raise PolicyError(f"decision for subscription {sub_id}: invalid pseudonym domain")
        if set(fields) & set(pseudonymise):
            raise PolicyError(
                f"decision for subscription {sub_id}: a field is both clear and pseudonymised"
            )
    generalise = _generalise(sub_id, entry) if allow else {}
    if set(generalise) & set(pseudonymise):
        raise PolicyError(
            f"decision for subscription {sub_id}: a field is both generalised and pseudonymised"
        )
    if not allow:
        fields, pseudonymise = (), ()
    return Decision(allow, fields, pseudonymise, reasons, version, domain, legal_basis, generalise)


#: How a field may be generalised (signalhub.enforcer.generalise implements them).
GENERALISATIONS = frozenset({"age_band", "postcode_area", "neighbourhood"})


def _generalise(sub_id: str, entry: Mapping[str, JSON]) -> dict[str, str]:
    """The optional ``generalise`` object: field -> one of :data:`GENERALISATIONS`."""
    value = entry.get("generalise", {})
    if not isinstance(value, dict) or not all(
        isinstance(method, str) and method in GENERALISATIONS for method in value.values()
    ):
        raise PolicyError(
            f"decision for subscription {sub_id}: generalise is not an object of "
            f"field -> {' | '.join(sorted(GENERALISATIONS))}"
        )
    return {str(name): str(method) for name, method in sorted(value.items())}


def _strings(sub_id: str, entry: Mapping[str, JSON], key: str) -> tuple[str, ...]:
    value = entry.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"decision for subscription {sub_id}: {key} is not a list of strings")
    return tuple(value)


class MemoisedPolicy:
    """A :class:`PolicyEngine` that evaluates each distinct input once (bounded LRU).

    Exact because a decision is a pure function of input and policy version: the key is the
    canonical JSON of the input plus the inner engine's version. Errors are never cached. A lock
    keeps the LRU consistent if ever called from several threads (the enforcer uses one).
    """

    def __init__(self, inner: PolicyEngine, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._inner = inner
        self._maxsize = maxsize
        self._cache: OrderedDict[str, dict[str, Decision]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def version(self) -> str:
        return self._inner.version

    def __len__(self) -> int:
        return len(self._cache)

    def decide(self, policy_input: JSON) -> dict[str, Decision]:
        key = self._inner.version + "\n" + _canonical(policy_input)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return dict(cached)
        decisions = self._inner.decide(policy_input)
        with self._lock:
            self.misses += 1
            self._store(key, decisions)
        return decisions

    def warm(self, inputs: Iterable[JSON], *, keep_going: Callable[[], bool] = lambda: True) -> int:
        """Evaluate ``inputs`` ahead of the signals that will need them; returns how many.

        A miss costs a full OPA evaluation (~1 ms here) and a fresh memo misses on every distinct
        input at first, so warming it from the enumerable input space keeps that cost off the
        stream. Inputs already held are skipped; an input the policy cannot evaluate is left out
        (the signal that needs it fails closed on its own). Stops once ``keep_going()`` is false,
        or when the memo is full. Not counted as hits or misses.
        """
        evaluated = 0
        for policy_input in inputs:
            if not keep_going() or len(self._cache) >= self._maxsize:
                break
            key = self._inner.version + "\n" + _canonical(policy_input)
            if key in self._cache:
                continue
            try:
                decisions = self._inner.decide(policy_input)
            except PolicyError:
                continue
            with self._lock:
                self._store(key, decisions)
            evaluated += 1
        return evaluated

    def _store(self, key: str, decisions: dict[str, Decision]) -> None:
        self._cache[key] = dict(decisions)
        while len(self._cache) > self._maxsize:
            self._cache.popitem(last=False)


def _canonical(value: JSON) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise PolicyError("policy input is not JSON-serialisable") from exc


def build_input(
    signal_type: str,
    source_agency: str,
    attributes: Mapping[str, JSON],
    subscriptions: Iterable[Mapping[str, Any]],
    today: date,
) -> JSON:
    """The policy input for one signal and the active subscriptions of its type.

    Only ``id``, ``subscriber``, ``purpose`` and ``legal_basis`` of each subscription go in,
    sorted by id, so that identical situations give identical inputs (and memo hits).
    ``attributes`` must already be the policy attributes (no personal data).
    """
    subs = sorted(
        (
            {
                "id": str(sub["id"]),
                "subscriber": str(sub["subscriber"]),
                "purpose": str(sub["purpose"]),
                "legal_basis": str(sub["legal_basis"]),
            }
            for sub in subscriptions
        ),
        key=lambda sub: sub["id"],
    )
    return {
        "signal": {"type": signal_type, "source": source_agency, "attributes": dict(attributes)},
        "subscriptions": subs,
        "now": today.isoformat(),
    }


def run_rego_tests(
    policies_dir: Path, coverage: RegoCoverage | None = None
) -> list[tuple[str, bool, str]]:
    """Evaluate every ``test_*`` rule of every ``*_test.rego`` on the embedded engine.

    Returns ``(package.rule, passed, message)`` in file order; a rule that is undefined or false
    fails. A policy that cannot be loaded raises :class:`PolicyError`. With ``coverage`` the
    engine traces each test and the lines it reached are added to it.
    """
    files = policy_files(policies_dir, tests=True)
    engine = _load_engine(policies_dir, files)
    results: list[tuple[str, bool, str]] = []
    try:
        for path in files:
            if not path.name.endswith("_test.rego"):
                continue
            source = path.read_text("utf-8")
            package = _PACKAGE.search(source)
            if package is None:
                raise PolicyError(f"{_module_name(policies_dir, path)}: no package declaration")
            names = dict.fromkeys(_TEST_RULE.findall(source))
            for name in names:
                results.append(_run_one(engine, f"{package.group(1)}.{name}", coverage))
    finally:
        engine.close()
    return results


def _run_one(engine: Any, rule: str, coverage: RegoCoverage | None) -> tuple[str, bool, str]:
    try:
        # Bind the value: this engine's eval_query reports a row even for a false expression.
        rows = engine.eval_query(f"result := data.{rule}", coverage=coverage is not None)
    except opa_bindings.OpaError as exc:
        return rule, False, exc.message
    if coverage is not None and engine.last_coverage:
        coverage.add(engine.last_coverage)
    passed = bool(rows) and rows[0].get("result") is True
    return rule, passed, "" if passed else "undefined or false"


class RegoCoverage:
    """Lines of the policy modules reached by the Rego tests, merged over every test run.

    OPA reports coverage per evaluation; a line counts as covered when any test reached it and
    as not covered when some evaluation saw it but none reached it.
    """

    def __init__(self) -> None:
        self._covered: dict[str, set[int]] = {}
        self._seen: dict[str, set[int]] = {}

    def add(self, report: Mapping[str, Any]) -> None:
        for name, entry in (report.get("files") or {}).items():
            covered = self._covered.setdefault(name, set())
            seen = self._seen.setdefault(name, set())
            for key, target in (("covered", covered), ("not_covered", None)):
                for span in entry.get(key) or ():
                    rows = range(span["start"]["row"], span["end"]["row"] + 1)
                    seen.update(rows)
                    if target is not None:
                        target.update(rows)

    def files(self, *, tests: bool = False) -> dict[str, tuple[int, int]]:
        """module name -> (covered lines, coverable lines); test modules only when asked."""
        return {
            name: (len(self._covered[name]), len(self._seen[name]))
            for name in sorted(self._seen)
            if tests or not name.endswith("_test.rego")
        }

    def not_covered(self, name: str) -> list[int]:
        return sorted(self._seen.get(name, set()) - self._covered.get(name, set()))

    def percent(self) -> float:
        """Line coverage of the policy modules (tests excluded), 0-100."""
        totals = self.files().values()
        coverable = sum(total for _, total in totals)
        return 100.0 if coverable == 0 else 100.0 * sum(c for c, _ in totals) / coverable


def check_policies(policies_dir: Path) -> list[str]:
    """Parse and type-check the policy (tests included); one message per problem, with file:line.

    An empty list means the policy loads and compiles.
    """
    try:
        files = policy_files(policies_dir, tests=True)
    except PolicyError as exc:
        return [str(exc)]
    problems: list[str] = []
    engine = opa_bindings.OpaEngine()
    try:
        for path in files:
            try:
                if path.suffix == ".rego":
                    engine.add_policy(_module_name(policies_dir, path), path.read_text("utf-8"))
                else:
                    engine.add_data(_read_json(policies_dir, path), f"{_DATA_ROOT}.{path.stem}")
            except opa_bindings.OpaError as exc:
                problems.extend(_opa_messages(exc.message))
            except PolicyError as exc:
                problems.append(str(exc))
        if not problems:
            try:
                engine.eval_query("true")
            except opa_bindings.OpaError as exc:
                problems.extend(_opa_messages(exc.message))
    finally:
        engine.close()
    return problems


def _opa_messages(message: str) -> list[str]:
    """Split OPA's "N errors occurred: a:1: ...\\n b:2: ..." into one line per error."""
    found = _OPA_LOCATION.findall(message.replace("occurred: ", "occurred:\n"))
    return found or [message]
