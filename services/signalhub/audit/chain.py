"""The audit store's chain: its rows on the ledger, with gaps that retention declared.

Every row of the store holds ``prev_hash`` (the ``row_hash`` of the row before it, or
:data:`~signalhub.ledger.GENESIS` for the first row ever) and ``row_hash = sha256(canonical(kind,
entry_id, prev_hash, record))``, linked and verified by :mod:`signalhub.ledger`; this module adds
what only the store knows. The sequence number orders the rows but is deliberately *not* hashed:
the order is what the links say, so a row moved elsewhere is recognised as moved (its own hash
still holds, its link does not) rather than as changed.

Retention removes old rows. It does so in the same transaction as it appends a ``retention``
entry that declares, per contiguous run of removed sequence numbers, the range and the
``row_hash`` of its last row (the *anchor*). Verification accepts a gap only where declared
ranges tile it exactly and the first row after it links to the anchor, so a row deleted outside
retention is still found, and the retention entry itself is protected by the chain that follows.

A chain is tamper-evident, not tamper-proof: whoever can rewrite every row after a change can
recompute the hashes too. Keep the head (``audit verify`` prints it) somewhere else and pass it
back with ``--anchor`` to detect that as well.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from signalhub.ledger import GENESIS, Break, Chain, Entry, canonical_material, entry_hash, link

__all__ = [
    "ChainRow",
    "Finding",
    "RemovedRange",
    "VerifyReport",
    "link_row",
    "row_hash",
    "verify_chain",
]


def row_material(kind: str, entry_id: str, prev_hash: str, body: str) -> bytes:
    """What a row's hash covers; ``body`` is the record's canonical JSON."""
    return canonical_material(
        {"kind": kind, "entry_id": entry_id, "prev_hash": prev_hash, "record": json.loads(body)}
    )


def link_row(kind: str, entry_id: str, prev_hash: str, body: str) -> Entry:
    """A new row on the ledger after ``prev_hash``."""
    return link(prev_hash, row_material(kind, entry_id, prev_hash, body))


def row_hash(kind: str, entry_id: str, prev_hash: str, body: str) -> str:
    """sha256 (hex) over the canonical form of one row."""
    return entry_hash(row_material(kind, entry_id, prev_hash, body))


@dataclass(frozen=True)
class RemovedRange:
    """A run of consecutive sequence numbers removed by retention, anchored by its last hash."""

    first_seq: int
    last_seq: int
    last_hash: str

    def as_json(self) -> dict[str, Any]:
        return {"first_seq": self.first_seq, "last_seq": self.last_seq, "anchor": self.last_hash}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> RemovedRange:
        return cls(int(value["first_seq"]), int(value["last_seq"]), str(value["anchor"]))


@dataclass(frozen=True)
class ChainRow:
    """One stored row as verification sees it."""

    seq: int
    kind: str
    entry_id: str
    body: str
    prev_hash: str
    row_hash: str
    #: Problems with the row's query columns (checked by the store against ``body``).
    index_problems: tuple[str, ...] = ()

    def removed_ranges(self) -> list[RemovedRange]:
        """The ranges a retention entry declares removed (none for other kinds)."""
        if self.kind != "retention":
            return []
        ranges = json.loads(self.body).get("audit_store", {}).get("removed_ranges", [])
        return [RemovedRange.from_json(item) for item in ranges]


@dataclass(frozen=True)
class Finding:
    """One problem, with the sequence number it is about and what kind of tampering it shows."""

    kind: str  # changed | deleted | inserted | reordered | truncated | anchor
    seq: int
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind}: {self.message}"


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_chain`."""

    rows: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    removed_by_retention: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.findings

    def kinds(self) -> set[str]:
        return {finding.kind for finding in self.findings}


def verify_chain(
    rows: Sequence[ChainRow],
    head: tuple[int, str],
    anchors: Iterable[tuple[int, str]] = (),
) -> VerifyReport:
    """Check every row's hash, every link, every gap, and the recorded head.

    ``rows`` in sequence order; ``head`` is the (seq, hash) the store recorded at its last
    append; ``anchors`` are (seq, hash) pairs kept outside the store.
    """
    report = VerifyReport(rows=len(rows), head_seq=head[0], head_hash=head[1])
    entries = [_entry(row) for row in rows]
    # Only a retention entry that still matches its hash may excuse a gap.
    ranges = sorted(
        (r for row, e in zip(rows, entries, strict=True) if e.sealed for r in row.removed_ranges()),
        key=lambda r: r.first_seq,
    )
    starts = [r.first_seq for r in ranges]
    report.removed_by_retention = sum(r.last_seq - r.first_seq + 1 for r in ranges)
    gaps = _gaps(rows, ranges, starts)
    chain = Chain(
        entries,
        anchored={
            index: None if tiled is None else tiled.last_hash for index, tiled in gaps.items()
        },
        name=lambda index: f"seq {rows[index].seq}",
    )
    findings = report.findings
    for index, row in enumerate(rows):
        if chain.seal_break(index) is not None:
            findings.append(
                Finding("changed", row.seq, "the record does not match its hash (it was edited)")
            )
        for problem in row.index_problems:
            findings.append(Finding("changed", row.seq, problem))
        covering = _covering(ranges, starts, row.seq)
        if covering is not None:
            findings.append(
                Finding(
                    "inserted",
                    row.seq,
                    f"retention removed seq {covering.first_seq}..{covering.last_seq}, "
                    "yet a row with this number exists",
                )
            )
        broken = chain.link_break(index)
        if index in gaps:
            _gap_finding(findings, rows, index, gaps[index], broken)
        elif broken is not None:
            findings.append(_link_finding(rows, broken))
    _check_head(findings, rows, head)
    for seq, expected in anchors:
        _check_anchor(findings, rows, ranges, starts, seq, expected)
    return report


def _entry(row: ChainRow) -> Entry:
    try:
        material: bytes | None = row_material(row.kind, row.entry_id, row.prev_hash, row.body)
    except (ValueError, TypeError):
        material = None  # a body that is no longer JSON cannot match its hash
    return Entry(row.prev_hash, row.row_hash, material)


def _gaps(
    rows: Sequence[ChainRow], ranges: list[RemovedRange], starts: list[int]
) -> dict[int, RemovedRange | None]:
    """Per row after missing seqs: the declared range ending there, or None if undeclared."""
    gaps: dict[int, RemovedRange | None] = {}
    for index, row in enumerate(rows):
        first_missing = rows[index - 1].seq + 1 if index else 1
        if row.seq > first_missing:
            gaps[index] = _tiling(ranges, starts, first_missing, row.seq - 1)
    return gaps


def _covering(ranges: list[RemovedRange], starts: list[int], seq: int) -> RemovedRange | None:
    index = bisect_right(starts, seq) - 1
    if index >= 0 and ranges[index].first_seq <= seq <= ranges[index].last_seq:
        return ranges[index]
    return None


def _tiling(
    ranges: list[RemovedRange], starts: list[int], first: int, last: int
) -> RemovedRange | None:
    """The last range if declared ranges cover ``first..last`` exactly, else None."""
    index = bisect_right(starts, first) - 1
    if index < 0 or ranges[index].first_seq != first:
        return None
    expected = first
    while index < len(ranges) and ranges[index].first_seq == expected:
        if ranges[index].last_seq == last:
            return ranges[index]
        if ranges[index].last_seq > last:
            return None
        expected = ranges[index].last_seq + 1
        index += 1
    return None


def _gap_finding(
    findings: list[Finding],
    rows: Sequence[ChainRow],
    index: int,
    tiled: RemovedRange | None,
    broken: Break | None,
) -> None:
    row = rows[index]
    first_missing = rows[index - 1].seq + 1 if index else 1
    last_missing = row.seq - 1
    where = (
        f"seq {first_missing}"
        if first_missing == last_missing
        else f"seq {first_missing}..{last_missing}"
    )
    if tiled is None:
        findings.append(
            Finding(
                "deleted",
                first_missing,
                f"{where} missing before seq {row.seq}, and no retention entry declares it removed",
            )
        )
    elif broken is not None:
        findings.append(
            Finding(
                "changed",
                row.seq,
                f"retention removed {where}, but this row does not link to the anchor it recorded",
            )
        )


def _link_finding(rows: Sequence[ChainRow], broken: Break) -> Finding:
    """A link break where the seqs run on: a removal would have left a gap in them."""
    row = rows[broken.index]
    if broken.kind != "removed":
        return Finding(broken.kind, row.seq, broken.why)
    if broken.index == 0:
        return Finding("inserted", row.seq, "the first row does not start the chain")
    prev = rows[broken.index - 1]
    return Finding(
        "changed",
        prev.seq,
        f"seq {row.seq} links to a hash no row has: seq {prev.seq} was rewritten "
        "(hash recomputed) or rows before it were removed and renumbered",
    )


def _check_head(findings: list[Finding], rows: Sequence[ChainRow], head: tuple[int, str]) -> None:
    head_seq, head_hash = head
    last = rows[-1] if rows else None
    if last is not None and (last.seq, last.row_hash) == (head_seq, head_hash):
        return
    if last is None and head_seq == 0:
        return
    if last is None or last.seq < head_seq:
        after = last.seq if last else 0
        findings.append(
            Finding(
                "truncated",
                after + 1,
                f"the store's head is seq {head_seq}; rows after seq {after} are gone",
            )
        )
    elif last.seq > head_seq:
        findings.append(
            Finding(
                "inserted",
                head_seq + 1,
                f"rows after the recorded head (seq {head_seq}) were added outside the store",
            )
        )
    else:
        findings.append(
            Finding("changed", last.seq, "the last row's hash differs from the recorded head")
        )


def _check_anchor(
    findings: list[Finding],
    rows: Sequence[ChainRow],
    ranges: list[RemovedRange],
    starts: list[int],
    seq: int,
    expected: str,
) -> None:
    for row in rows:
        if row.seq == seq:
            if row.row_hash != expected:
                findings.append(Finding("anchor", seq, "the row's hash differs from the anchor"))
            return
    covering = _covering(ranges, starts, seq)
    if covering is not None and covering.last_seq == seq and covering.last_hash == expected:
        return  # removed by retention, which recorded this very hash
    if covering is None:
        findings.append(Finding("anchor", seq, "the anchored row is not in the store"))
