"""The Rego tests beside the policy (``*_test.rego``), run on the embedded engine like ``opa test``.

Each package's ``test_*`` rules are evaluated together in one query (one array comprehension per
rule, so an undefined rule gives ``[]`` instead of hiding the others): the query is compiled once
per package instead of once per rule, which takes the shipped suite from seconds to a few tenths
of a second. Only when that query errors (a conflict, a runtime error in one rule) are the
package's rules run one by one, so the error lands on the rule that raised it.

A failing rule is evaluated once more with a trace, to say where it failed and what came out:
the failing expression of the test with its file:line; for a call or rule reference, the
expression inside it that failed (up to three levels); and for a comparison such as
``d.fields == [...]`` or a ``[not] d.allow`` the value the path held (``d.fields is [...]``),
else the values of the variables the expression names. The value of something that is not a path
into a variable (a function's result, a rule evaluated ``with`` an input) is not in the trace, so
it is not shown; the failing expression inside it is.

:func:`untested_agreements` checks the documented convention that every agreement has an allow
test and a deny test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import opa_bindings

from signalhub.errors import PolicyError
from signalhub.policy.bundle import is_test_module
from signalhub.policy.engine import PolicySource, load_opa_engine, opa_messages, policy_source

__all__ = ["RegoCoverage", "RegoTestResult", "run_rego_tests", "untested_agreements"]

_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\b", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_LOCATION = re.compile(r"^(?P<module>.+):(?P<row>\d+)$")
_REF = re.compile(r'^(?P<var>[A-Za-z_]\w*)(?P<path>(?:\.[A-Za-z_]\w*|\["[^"\\]*"\]|\[\d+\])*)$')
_STEP = re.compile(r'\.([A-Za-z_]\w*)|\["([^"\\]*)"\]|\[(\d+)\]')
_COMPARISON = re.compile(r"\s(==|!=)\s")
#: How many nested failing expressions a message follows, and how much of a value it shows.
_DEPTH = 3
_VALUE_CHARS = 300


class RegoTestResult(NamedTuple):
    """One ``test_*`` rule: ``package.rule``, whether it passed, and why not."""

    name: str
    passed: bool
    message: str


def run_rego_tests(
    policies: PolicySource, coverage: RegoCoverage | None = None
) -> list[RegoTestResult]:
    """Evaluate every ``test_*`` rule of every ``*_test.rego`` (a directory or a bundle's files).

    Returns results in file order; a rule passes only when it is ``true``. A policy that cannot
    be loaded or compiled raises :class:`PolicyError`. With ``coverage`` the evaluations are
    traced and the lines they reached are added to it.
    """
    label, files = policy_source(policies)
    engine = load_opa_engine(files, label=label)
    try:
        try:
            engine.eval_query("true")
        except opa_bindings.OpaError as exc:
            raise PolicyError(
                "cannot compile policy — "
                + "; ".join(opa_messages(exc.message))
                + " — run `signalhub policy check`, fix the file and retry"
            ) from exc
        sources = {f"{label}/{name}": text for name, text in files.items()}
        results: list[RegoTestResult] = []
        for package, names in _test_rules(label, files).items():
            results.extend(_run_package(engine, package, names, sources, coverage))
    finally:
        engine.close()
    return results


def untested_agreements(policies: PolicySource, results: Iterable[RegoTestResult]) -> list[str]:
    """Agreements in ``data/agreements.json`` without a ``test_allow_*`` or a ``test_deny_*``.

    The convention of the shipped tests (docs/policies.md): agreement ``type/subscriber/purpose``
    has ``test_allow_type_subscriber_purpose`` and at least one ``test_deny_type_..._<why>``.
    One message per missing test; none when the policy has no agreements file.
    """
    _, files = policy_source(policies)
    text = files.get("data/agreements.json")
    if text is None:
        return []
    try:
        agreements = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"data/agreements.json: invalid JSON: {exc.msg} — fix the file") from exc
    names = {result.name.rsplit(".", 1)[-1] for result in results}
    missing = []
    for key in sorted(agreements if isinstance(agreements, dict) else ()):
        stem = key.replace("/", "_")
        if f"test_allow_{stem}" not in names:
            missing.append(f"agreement {key} has no test_allow_{stem}")
        if not any(name.startswith(f"test_deny_{stem}_") for name in names):
            missing.append(f"agreement {key} has no test_deny_{stem}_* test")
    return missing


def _test_rules(label: str, files: Mapping[str, str]) -> dict[str, list[str]]:
    """package -> its ``test_*`` rule names, in file order (a package may span files)."""
    packages: dict[str, dict[str, None]] = {}
    for name, text in sorted(files.items()):
        if not is_test_module(name):
            continue
        package = _PACKAGE.search(text)
        if package is None:
            raise PolicyError(f"{label}/{name}: no package declaration")
        packages.setdefault(package.group(1), {}).update(dict.fromkeys(_TEST_RULE.findall(text)))
    return {package: list(names) for package, names in packages.items()}


def _run_package(
    engine: Any,
    package: str,
    names: list[str],
    sources: Mapping[str, str],
    coverage: RegoCoverage | None,
) -> list[RegoTestResult]:
    query = "; ".join(f"r{i} := [x | x := data.{package}.{n}]" for i, n in enumerate(names))
    try:
        rows = engine.eval_query(query, coverage=coverage is not None) if names else [{}]
    except opa_bindings.OpaError:
        return [_run_one(engine, f"{package}.{name}", sources, coverage) for name in names]
    if coverage is not None and engine.last_coverage:
        coverage.add(engine.last_coverage)
    values = rows[0] if rows else {}
    return [
        _result(engine, f"{package}.{name}", values.get(f"r{i}", []), sources)
        for i, name in enumerate(names)
    ]


def _run_one(
    engine: Any, rule: str, sources: Mapping[str, str], coverage: RegoCoverage | None
) -> RegoTestResult:
    try:
        # Bind the value: this engine's eval_query reports a row even for a false expression.
        rows = engine.eval_query(f"result := data.{rule}", coverage=coverage is not None)
    except opa_bindings.OpaError as exc:
        return RegoTestResult(rule, False, exc.message)
    if coverage is not None and engine.last_coverage:
        coverage.add(engine.last_coverage)
    return _result(engine, rule, [row["result"] for row in rows if "result" in row], sources)


def _result(
    engine: Any, rule: str, values: list[Any], sources: Mapping[str, str]
) -> RegoTestResult:
    if values == [True]:
        return RegoTestResult(rule, True, "")
    outcome = "undefined" if not values else f"is {_show(values[0])}, not true"
    where = _explain(engine, rule, sources)
    return RegoTestResult(rule, False, f"{outcome}: {where}" if where else outcome)


def _explain(engine: Any, rule: str, sources: Mapping[str, str]) -> str:
    """Where the rule failed and what its variables held, from a trace of one evaluation.

    The failing expression is the last failure in a body of the test rule itself (the queries
    the top query opened); later failures belong to backtracking. Its cause is the last
    failure among the queries that expression opened, while it was being evaluated.
    """
    try:
        engine.eval_query(f"result := data.{rule}", trace=True)
    except opa_bindings.OpaError:
        return ""
    trace: list[Mapping[str, Any]] = engine.last_trace or []
    bodies = {e.get("query_id") for e in trace if e.get("parent_id") == 0} - {0}
    failed = [
        i
        for i, event in enumerate(trace)
        if event.get("op") == "Fail"
        and event.get("query_id") in bodies
        and _source_line(event, sources) is not None
    ]
    if not failed:
        return ""
    chain = [failed[-1]]
    while len(chain) < _DEPTH:
        cause = _cause(trace, chain[-1], sources)
        if cause is None:
            break
        if trace[cause].get("location") == trace[chain[-1]].get("location"):
            chain[-1] = cause  # a nested query of the same expression (``every``): go deeper
        else:
            chain.append(cause)
    return " → ".join(_describe(trace[i], sources) for i in chain)


def _cause(trace: list[Mapping[str, Any]], at: int, sources: Mapping[str, str]) -> int | None:
    """The failure inside the call or rule that made the expression failing at ``at`` fail.

    None for a comparison: it fails on the values compared, which :func:`_describe` shows.
    """
    failed = trace[at]
    if _COMPARISON.search(_source_line(failed, sources) or ""):
        return None
    query, location = failed.get("query_id"), failed.get("location")
    start = next(
        (
            i
            for i in range(at - 1, -1, -1)
            if trace[i].get("op") == "Eval"
            and trace[i].get("query_id") == query
            and trace[i].get("location") == location
        ),
        None,
    )
    if start is None:
        return None
    causes = [
        i
        for i in range(start + 1, at)
        if trace[i].get("op") == "Fail"
        and trace[i].get("parent_id") == query
        and trace[i].get("query_id") != query
        and _source_line(trace[i], sources) is not None
    ]
    return causes[-1] if causes else None


def _source_line(event: Mapping[str, Any], sources: Mapping[str, str]) -> str | None:
    match = _LOCATION.match(str(event.get("location") or ""))
    if match is None or match.group("module") not in sources:
        return None
    lines = sources[match.group("module")].splitlines()
    row = int(match.group("row"))
    return lines[row - 1].strip() if 0 < row <= len(lines) else None


def _describe(event: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    """``file:line: expression`` and, where the trace holds them, the values it compared."""
    text = _source_line(event, sources) or ""
    described = f"{event['location']}: {text}"
    local_vars = {k: v for k, v in (event.get("locals") or {}).items() if not k.startswith("__")}
    values = _compared_values(text, local_vars)
    if values is None:
        values = [
            f"{var} = {_show(value)}"
            for var, value in sorted(local_vars.items())
            if re.search(rf"\b{re.escape(var)}\b", text)
        ]
    return described + (" — " + ", ".join(values) if values else "")


def _compared_values(text: str, local_vars: Mapping[str, Any]) -> list[str] | None:
    """The sides of ``left == right`` (``!=``) or the ``ref`` of ``[not] ref`` that resolve."""
    sides = _COMPARISON.split(text)
    operands = [sides[0], sides[2]] if len(sides) == 3 else [text.removeprefix("not ")]
    shown = []
    for side in operands:
        found, value = _resolve(side.strip(), local_vars)
        if found:
            shown.append(f"{side.strip()} is {_show(value)}")
    return shown or None


def _resolve(ref: str, local_vars: Mapping[str, Any]) -> tuple[bool, Any]:
    match = _REF.match(ref)
    if match is None or match.group("var") not in local_vars:
        return False, None
    value = local_vars[match.group("var")]
    for key, quoted, index in _STEP.findall(match.group("path")):
        step: Any = int(index) if index else (key or quoted)
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return True, "<undefined>"
    return True, value


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


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
            if tests or not is_test_module(name)
        }

    def not_covered(self, name: str) -> list[int]:
        return sorted(self._seen.get(name, set()) - self._covered.get(name, set()))

    def percent(self) -> float:
        """Line coverage of the policy modules (tests excluded), 0-100."""
        totals = self.files().values()
        coverable = sum(total for _, total in totals)
        return 100.0 if coverable == 0 else 100.0 * sum(c for c, _ in totals) / coverable
