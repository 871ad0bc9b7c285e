"""Who sees what: subscriber x signal type x field -> clear / pseudonymised / withheld.

Derived by *evaluating* the policy over the attribute corpus (:mod:`signalhub.policy.corpus`),
not by reading the agreements: the matrix shows what the rules actually do, including the
conditions (a field is "clear, conditional" when some inputs are allowed and others denied; the
deny reasons the policy gave say when). A subscription the policy never allows shows every field
withheld with the reason.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from signalhub.enforcer.projection import plan_projection
from signalhub.policy.corpus import policy_corpus
from signalhub.policy.engine import PolicyEngine
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription

__all__ = ["MatrixRow", "policy_matrix", "render_csv", "render_html", "render_text"]

CSV_COLUMNS = (
    "subscriber",
    "subscription",
    "signal_type",
    "field",
    "treatment",
    "legal_basis",
    "domain",
    "allowed_cases",
    "cases",
    "when_denied",
)


@dataclass(frozen=True)
class MatrixRow:
    """One cell of the matrix, with why and how often."""

    subscriber: str
    subscription: str
    signal_type: str
    field: str
    treatment: str  # clear | pseudonymised | withheld
    legal_basis: str
    domain: str
    allowed_cases: int
    cases: int
    when_denied: str  # the policy's deny reasons over the corpus, "; "-joined

    @property
    def conditional(self) -> bool:
        return 0 < self.allowed_cases < self.cases


def policy_matrix(
    registry: SchemaRegistry,
    subscriptions: Mapping[str, Sequence[Subscription]],
    engine: PolicyEngine,
    today: date,
) -> list[MatrixRow]:
    """Evaluate ``engine`` over the corpus and fold the decisions into matrix rows."""
    allowed: Counter[tuple[str, str]] = Counter()
    cases: Counter[tuple[str, str]] = Counter()
    treatment: dict[tuple[str, str, str], str] = {}
    basis: dict[tuple[str, str], str] = {}
    domain: dict[tuple[str, str], str] = {}
    reasons: dict[tuple[str, str], Counter[str]] = {}
    for case in policy_corpus(registry, subscriptions, today):
        schema = registry.signal(case.signal_type)
        for sub_id, decision in engine.decide(case.policy_input).items():
            key = (sub_id, case.signal_type)
            cases[key] += 1
            basis.setdefault(key, decision.legal_basis)
            if not decision.allow:
                reasons.setdefault(key, Counter()).update(decision.reasons)
                continue
            allowed[key] += 1
            basis[key], domain[key] = decision.legal_basis, decision.domain
            projection = plan_projection(schema, decision)
            for state, names in (
                ("clear", projection.clear),
                ("pseudonymised", projection.pseudonymised),
            ):
                for name in names:
                    # Most disclosing treatment seen wins: the matrix must not understate.
                    if treatment.get((sub_id, case.signal_type, name)) != "clear":
                        treatment[(sub_id, case.signal_type, name)] = state
    rows: list[MatrixRow] = []
    for signal_type in registry.signal_types():
        schema = registry.signal(signal_type)
        for sub in subscriptions.get(signal_type, ()):
            key = (sub.id, signal_type)
            if not cases[key]:
                continue
            denied = "; ".join(sorted(reasons.get(key, Counter())))
            for spec in schema.payload_fields:
                rows.append(
                    MatrixRow(
                        sub.subscriber,
                        sub.id,
                        signal_type,
                        spec.name,
                        treatment.get((sub.id, signal_type, spec.name), "withheld"),
                        basis.get(key, sub.legal_basis),
                        domain.get(key, ""),
                        allowed[key],
                        cases[key],
                        denied,
                    )
                )
    rows.sort(key=lambda r: (r.subscriber, r.signal_type, r.subscription))
    return rows


def _when(row: MatrixRow) -> str:
    if row.allowed_cases == 0:
        return "never"
    if row.conditional:
        return f"conditional ({row.allowed_cases}/{row.cases} cases)"
    return "always"


def render_text(rows: Sequence[MatrixRow]) -> str:
    """Per subscriber and signal type: the fields in clear, pseudonymised, and the basis."""
    out: list[str] = []
    groups: dict[tuple[str, str, str], list[MatrixRow]] = {}
    for row in rows:
        groups.setdefault((row.subscriber, row.signal_type, row.subscription), []).append(row)
    current = None
    for (subscriber, signal_type, sub_id), cells in groups.items():
        if subscriber != current:
            out.append(f"\n{subscriber}")
            current = subscriber
        first = cells[0]
        clear = [c.field for c in cells if c.treatment == "clear"]
        pseudo = [c.field for c in cells if c.treatment == "pseudonymised"]
        out.append(f"  {signal_type}  ({sub_id}, {_when(first)})")
        out.append(f"    legal basis:   {first.legal_basis}")
        out.append(f"    clear:         {', '.join(clear) or '-'}")
        out.append(f"    pseudonymised: {', '.join(pseudo) or '-'}")
        withheld = [c.field for c in cells if c.treatment == "withheld"]
        out.append(f"    withheld:      {', '.join(withheld) or '-'}")
        if first.when_denied and first.allowed_cases < first.cases:
            out.append(f"    denied when:   {first.when_denied}")
    return "\n".join(out).lstrip("\n") + "\n"


def render_csv(rows: Sequence[MatrixRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([getattr(row, column) for column in CSV_COLUMNS])
    return buffer.getvalue()


def render_html(rows: Sequence[MatrixRow], *, version: str) -> str:
    """A self-contained HTML page: one table row per subscription and type, fields as cells."""
    fields: dict[str, list[str]] = {}
    for row in rows:
        names = fields.setdefault(row.signal_type, [])
        if row.field not in names:
            names.append(row.field)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>signalhub: who sees what ({html.escape(version)})</title>",
        "<style>td,th{border:1px solid #999;padding:2px 6px;font:12px sans-serif}"
        "table{border-collapse:collapse;margin-bottom:1em}.clear{background:#f8d0c8}"
        ".pseudonymised{background:#fbeec1}.withheld{color:#999}</style></head><body>",
        f"<h1>Who sees what</h1><p>Policy version {html.escape(version)}</p>",
    ]
    for signal_type, names in fields.items():
        parts.append(f"<h2>{html.escape(signal_type)}</h2><table><tr><th>subscriber</th>")
        parts.append("<th>legal basis</th><th>when</th>")
        parts += [f"<th>{html.escape(name)}</th>" for name in names]
        parts.append("</tr>")
        by_sub: dict[str, dict[str, MatrixRow]] = {}
        for row in rows:
            if row.signal_type == signal_type:
                by_sub.setdefault(row.subscription, {})[row.field] = row
        for sub_id, cells in by_sub.items():
            first = next(iter(cells.values()))
            title = html.escape(first.when_denied, quote=True)
            parts.append(
                f"<tr><td>{html.escape(first.subscriber)} ({html.escape(sub_id)})</td>"
                f"<td>{html.escape(first.legal_basis)}</td>"
                f"<td title='{title}'>{html.escape(_when(first))}</td>"
            )
            for name in names:
                state = cells[name].treatment if name in cells else "withheld"
                parts.append(f"<td class='{state}'>{state}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)
