"""The neighbourhood picture (wijkbeeld): signals per CBS buurtcode × signal type × ISO week.

Only counts, never a person: the bundler keeps per signal its type, neighbourhood and week, and
this module aggregates them. Small-cell suppression: a count below k (``SIGNALHUB_WIJKBEELD_K``,
default 5) is shown as ``<k``, because a cell of one or two signals in a small street can point at
a household. No totals per neighbourhood are shown, since a total minus the visible cells would
give the suppressed ones back. Signals without a buurtcode are counted under ``onbekend``.
"""

from __future__ import annotations

import csv
import html
import io
from collections import defaultdict
from dataclasses import dataclass

from signalhub.bundling.store import BundleStore

__all__ = ["Cell", "cells", "render_count", "to_csv", "to_html"]

_BAR_W, _ROW_H, _LABEL_W = 260, 16, 170


@dataclass(frozen=True)
class Cell:
    """One count; ``count`` is the true number, :func:`render_count` is what may be shown."""

    neighbourhood: str
    signal_type: str
    week: str
    count: int


def cells(store: BundleStore) -> list[Cell]:
    """Every non-empty cell, sorted by neighbourhood, week, signal type."""
    return [Cell(*row) for row in store.counts()]


def render_count(count: int, k: int) -> str:
    """The count as shown: the number from k up, ``<k`` below it."""
    return str(count) if count >= k else f"<{k}"


def to_csv(found: list[Cell], k: int) -> str:
    """``buurtcode,signal_type,week,count`` with suppressed counts shown as ``<k``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["buurtcode", "signal_type", "week", "count"])
    for cell in found:
        writer.writerow(
            [cell.neighbourhood, cell.signal_type, cell.week, render_count(cell.count, k)]
        )
    return out.getvalue()


def to_html(found: list[Cell], k: int) -> str:
    """A self-contained page (inline SVG, no scripts, no CDN): one bar chart per neighbourhood.

    A suppressed cell is drawn as a hatched bar of length k and labelled ``<k``, so its size
    cannot be read off the chart either.
    """
    by_area: dict[str, list[Cell]] = defaultdict(list)
    for cell in found:
        by_area[cell.neighbourhood].append(cell)
    sections = [_section(area, rows, k) for area, rows in sorted(by_area.items())]
    body = "\n".join(sections) or "<p>No signals yet.</p>"
    return (
        '<!doctype html>\n<html lang="nl"><head><meta charset="utf-8">'
        "<title>Wijkbeeld</title><style>body{font-family:sans-serif;margin:2em}"
        "h2{font-size:1.1em;margin-top:2em}svg text{font-size:11px}</style></head><body>\n"
        f"<h1>Wijkbeeld</h1><p>Signals per neighbourhood (CBS buurtcode), signal type and ISO "
        f"week. Counts below {k} are shown as &lt;{k}.</p>\n{body}\n</body></html>\n"
    )


def _section(area: str, rows: list[Cell], k: int) -> str:
    top = max(max(max(cell.count, k) for cell in rows), 1)
    height = _ROW_H * len(rows) + 4
    width = _LABEL_W + _BAR_W + 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="signals in {html.escape(area)}">',
        '<defs><pattern id="h" width="4" height="4" patternUnits="userSpaceOnUse">'
        '<path d="M0,4 l4,-4" stroke="#888"/></pattern></defs>',
    ]
    for index, cell in enumerate(rows):
        y = index * _ROW_H + 2
        shown = render_count(cell.count, k)
        suppressed = cell.count < k
        length = int(_BAR_W * (k if suppressed else cell.count) / top)
        fill = "url(#h)" if suppressed else "#3a6ea5"
        label = html.escape(f"{cell.week} {cell.signal_type}")
        parts.append(f'<text x="0" y="{y + 11}">{label}</text>')
        parts.append(
            f'<rect x="{_LABEL_W}" y="{y}" width="{max(length, 1)}" height="{_ROW_H - 4}" '
            f'fill="{fill}"/>'
        )
        parts.append(f'<text x="{_LABEL_W + length + 4}" y="{y + 11}">{html.escape(shown)}</text>')
    parts.append("</svg>")
    return f"<h2>{html.escape(area)}</h2>\n" + "\n".join(parts)
