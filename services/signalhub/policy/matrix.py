"""Who sees what: subscriber x signal type x source x field -> clear / generalised / pseudonymised
/ withheld.

Derived by *evaluating* the policy over the attribute corpus (:mod:`signalhub.policy.corpus`),
not by reading the agreements: the matrix shows what the rules actually do, including the
conditions (a subscription is "conditional" when some inputs are allowed and others denied; the
deny reasons the policy gave say when). Each field's treatment is the one the enforcer applies
(:func:`~signalhub.enforcer.projection.plan_projection` for the payload,
:func:`~signalhub.enforcer.envelope.envelope_treatments` for the envelope), with how: the
generalisation method, or what a pseudonymised envelope value is. A subscription the policy never
allows shows every field withheld with the reason.

The corpus is evaluated once per agency that publishes the type (``sources``); where the policy
decides alike for all of them, one row stands for every source (``source_agency`` ``*``), else
each publisher gets its own rows.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date

from signalhub.enforcer.envelope import ENVELOPE_FIELD_PREFIX, envelope_treatments
from signalhub.enforcer.projection import plan_projection
from signalhub.policy.corpus import CORPUS_SOURCE, policy_corpus
from signalhub.policy.decision import Decision
from signalhub.policy.engine import PolicyEngine
from signalhub.schema.registry import SchemaRegistry, SignalSchema
from signalhub.subscriptions import Subscription

__all__ = [
    "ANY_SOURCE",
    "TREATMENTS",
    "MatrixRow",
    "policy_matrix",
    "render_csv",
    "render_html",
    "render_json",
    "render_text",
]

#: From least to most disclosing: over several inputs a field shows the most disclosing one seen,
#: so the matrix never understates.
TREATMENTS = ("withheld", "pseudonymised", "generalised", "clear")
#: The source of a row that holds for every publisher of the type.
ANY_SOURCE = "*"
#: Envelope fields that say what kind of record and from whom: clear in every delivery, so the
#: text form leaves them out (the other forms list them).
_DESCRIPTIVE = frozenset(
    {"envelope.signal_type", "envelope.source_agency", "envelope.schema_version"}
)

CSV_COLUMNS = (
    "subscriber",
    "subscription",
    "signal_type",
    "source_agency",
    "field",
    "treatment",
    "how",
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
    source_agency: str  # a publishing agency, or ANY_SOURCE
    field: str  # a payload field, or envelope.<name>
    treatment: str  # one of TREATMENTS
    how: str  # generalised: the method(s); pseudonymised envelope values: what they become
    legal_basis: str
    domain: str  # the pseudonym domain of the deliveries ("" when never allowed)
    allowed_cases: int
    cases: int
    when_denied: str  # the policy's deny reasons over the corpus, "; "-joined

    @property
    def conditional(self) -> bool:
        return 0 < self.allowed_cases < self.cases


@dataclass
class _Tally:
    """What one subscription got for one type from one source, over the corpus."""

    cases: int = 0
    allowed: int = 0
    basis: str = ""
    domain: str = ""
    reasons: Counter[str] = field(default_factory=Counter)
    #: field -> (rank in TREATMENTS, the hows seen at that rank)
    cells: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)

    def note(self, name: str, treatment: str, how: str = "") -> None:
        rank = TREATMENTS.index(treatment)
        seen = self.cells.get(name)
        if seen is None or rank > seen[0]:
            self.cells[name] = (rank, frozenset({how} - {""}))
        elif rank == seen[0] and how:
            self.cells[name] = (rank, seen[1] | {how})

    def add(self, schema: SignalSchema, decision: Decision) -> None:
        self.cases += 1
        self.basis = self.basis or decision.legal_basis
        if not decision.allow:
            self.reasons.update(decision.reasons)
            return
        self.allowed += 1
        self.basis, self.domain = decision.legal_basis, decision.domain
        projection = plan_projection(schema, decision)
        for name in projection.clear:
            if schema.field(name).hub_id is None:
                self.note(name, "clear")
            else:  # a hub id leaves as the domain's own id (projection.project_payload)
                self.note(name, "pseudonymised", "id of the domain")
        for name, method in projection.generalised:
            self.note(name, "generalised", method)
        for name in projection.pseudonymised:
            self.note(name, "pseudonymised")
        for name, treatment in envelope_treatments(decision).items():
            self.note(ENVELOPE_FIELD_PREFIX + name, treatment.treatment, treatment.how)

    def signature(self) -> tuple[object, ...]:
        """Everything a row shows: two sources with the same signature share their rows."""
        return (
            self.cases,
            self.allowed,
            self.basis,
            self.domain,
            sorted(self.reasons),
            sorted(self.cells.items()),
        )


def policy_matrix(
    registry: SchemaRegistry,
    subscriptions: Mapping[str, Sequence[Subscription]],
    engine: PolicyEngine,
    today: date,
    *,
    sources: Mapping[str, Sequence[str]] | None = None,
) -> list[MatrixRow]:
    """Evaluate ``engine`` over the corpus, per publishing agency of each type (``sources``,
    default: one, :data:`~signalhub.policy.corpus.CORPUS_SOURCE`), and fold the decisions into
    matrix rows."""
    tallies: dict[tuple[str, str, str], _Tally] = {}
    for case in policy_corpus(registry, subscriptions, today, sources=sources):
        schema = registry.signal(case.signal_type)
        agency = str(case.policy_input["signal"]["source"])
        for sub_id, decision in engine.decide(case.policy_input).items():
            key = (sub_id, case.signal_type, agency)
            tallies.setdefault(key, _Tally()).add(schema, decision)
    rows: list[MatrixRow] = []
    for signal_type in registry.signal_types():
        schema = registry.signal(signal_type)
        fields = [spec.name for spec in schema.payload_fields] + _envelope_fields(schema)
        agencies = list((sources or {}).get(signal_type) or (CORPUS_SOURCE,))
        for sub in subscriptions.get(signal_type, ()):
            found = {
                a: tallies[(sub.id, signal_type, a)]
                for a in agencies
                if (sub.id, signal_type, a) in tallies
            }
            if not found:
                continue
            if len({repr(t.signature()) for t in found.values()}) == 1:
                found = {ANY_SOURCE: next(iter(found.values()))}
            for agency, tally in found.items():
                rows += _rows(sub, signal_type, agency, tally, fields)
    rows.sort(key=lambda r: (r.subscriber, r.signal_type, r.subscription))
    return rows


def _envelope_fields(schema: SignalSchema) -> list[str]:
    envelope = next(f for f in schema.avro["fields"] if f["name"] == "envelope")["type"]
    return [ENVELOPE_FIELD_PREFIX + str(f["name"]) for f in envelope["fields"]]


def _rows(
    sub: Subscription, signal_type: str, agency: str, tally: _Tally, fields: Sequence[str]
) -> list[MatrixRow]:
    denied = "; ".join(sorted(tally.reasons))
    rows = []
    for name in fields:
        rank, hows = tally.cells.get(name, (0, frozenset()))
        rows.append(
            MatrixRow(
                sub.subscriber,
                sub.id,
                signal_type,
                agency,
                name,
                TREATMENTS[rank],
                " | ".join(sorted(hows)),
                tally.basis or sub.legal_basis,
                tally.domain,
                tally.allowed,
                tally.cases,
                denied,
            )
        )
    return rows


def _when(row: MatrixRow) -> str:
    if row.allowed_cases == 0:
        return "never"
    if row.conditional:
        return f"conditional ({row.allowed_cases}/{row.cases} cases)"
    return "always"


def _named(row: MatrixRow) -> str:
    return f"{row.field} ({row.how})" if row.how else row.field


def _groups(rows: Sequence[MatrixRow]) -> dict[tuple[str, str, str, str], list[MatrixRow]]:
    groups: dict[tuple[str, str, str, str], list[MatrixRow]] = {}
    for row in rows:
        key = (row.subscriber, row.signal_type, row.subscription, row.source_agency)
        groups.setdefault(key, []).append(row)
    return groups


def render_text(rows: Sequence[MatrixRow]) -> str:
    """Per subscriber, signal type and (where it matters) source: the payload fields by
    treatment, the envelope fields that are decided, the basis and the domain."""
    out: list[str] = []
    current = None
    for (subscriber, signal_type, sub_id, source), cells in _groups(rows).items():
        if subscriber != current:
            out.append(f"\n{subscriber}")
            current = subscriber
        first = cells[0]
        origin = "" if source == ANY_SOURCE else f", from {source}"
        out.append(f"  {signal_type}  ({sub_id}{origin}, {_when(first)})")
        out.append(f"    legal basis:   {first.legal_basis}")
        payload = [c for c in cells if not c.field.startswith(ENVELOPE_FIELD_PREFIX)]
        for treatment in reversed(TREATMENTS):
            names = [_named(c) for c in payload if c.treatment == treatment]
            out.append(f"    {treatment + ':':<15}{', '.join(names) or '-'}")
        if first.allowed_cases:
            out.append(f"    domain:        {first.domain}")
            envelope = [
                f"{c.field.removeprefix(ENVELOPE_FIELD_PREFIX)} {c.treatment}"
                + (f" ({c.how})" if c.how else "")
                for c in cells
                if c.field.startswith(ENVELOPE_FIELD_PREFIX) and c.field not in _DESCRIPTIVE
            ]
            out.append(f"    envelope:      {', '.join(envelope)}")
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


def render_json(rows: Sequence[MatrixRow], *, version: str) -> str:
    """``{"policy_version", "rows": [{column: value}]}``, one row per cell, as the CSV."""
    body = {"policy_version": version, "rows": [asdict(row) for row in rows]}
    return json.dumps(body, indent=1, ensure_ascii=False) + "\n"


def render_html(rows: Sequence[MatrixRow], *, version: str) -> str:
    """A self-contained HTML page: one table per signal type, one row per subscription and
    source, the fields as cells."""
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
        ".generalised{background:#f3dcc0}.pseudonymised{background:#fbeec1}"
        ".withheld{color:#999}</style></head><body>",
        f"<h1>Who sees what</h1><p>Policy version {html.escape(version)}</p>",
    ]
    groups = _groups(rows)
    for signal_type, names in fields.items():
        parts.append(f"<h2>{html.escape(signal_type)}</h2><table><tr><th>subscriber</th>")
        parts.append("<th>source</th><th>legal basis</th><th>when</th>")
        parts += [f"<th>{html.escape(name)}</th>" for name in names]
        parts.append("</tr>")
        for (subscriber, of_type, sub_id, source), cells in groups.items():
            if of_type != signal_type:
                continue
            first = cells[0]
            by_field = {cell.field: cell for cell in cells}
            title = html.escape(first.when_denied, quote=True)
            parts.append(
                f"<tr><td>{html.escape(subscriber)} ({html.escape(sub_id)})</td>"
                f"<td>{html.escape(source)}</td><td>{html.escape(first.legal_basis)}</td>"
                f"<td title='{title}'>{html.escape(_when(first))}</td>"
            )
            for name in names:
                cell = by_field.get(name)
                state = cell.treatment if cell else "withheld"
                how = f" ({html.escape(cell.how)})" if cell and cell.how else ""
                parts.append(f"<td class='{state}'>{state}{how}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)
