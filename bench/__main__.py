"""``python -m bench [--quick] [--only NAME ...]``: run the benchmarks, print one table, save JSON.

Every benchmark starts its own embedded broker, so they do not disturb each other; they run one
after another on this machine. The ratios compare signalhub's signals/s on one worker with the
limit (raw aiokafka), the framework floor (faust pass-through) and the naive baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import dryrun, floor, hub, leak_guard, limit, naive, scaling
from bench.common import Mode, Row
from bench.floor import FANOUT
from signalhub.config import load_settings
from signalhub.schema.registry import SchemaRegistry

Bench = Callable[[Mode, SchemaRegistry], list[Row]]

BENCHES: dict[str, Bench] = {
    "limit": limit.run,
    "floor": floor.run,
    "naive": naive.run,
    "signalhub": hub.run,
    "durable": hub.run_durable,
    "scaling": scaling.run,
    "dryrun": dryrun.run,
    "leakguard": leak_guard.run,
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs, under a minute")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these")
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/results/<time>.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    mode = Mode.of(args.quick)
    registry = SchemaRegistry.from_dir(load_settings(bootstrap_servers="").schemas_dir)
    rows: list[Row] = []
    timings: dict[str, float] = {}
    started = time.monotonic()
    for name in args.only or list(BENCHES):
        print(f"… {name}", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            rows += BENCHES[name](mode, registry)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            rows.append(Row(name, "failed", None, "", f"{type(exc).__name__}: {exc}"[:200]))
        timings[name] = round(time.monotonic() - began, 1)
    rows += ratios(rows)
    print(render(rows))
    total = time.monotonic() - started
    spent = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
    print(f"\n{mode.name} run: {total:.0f} s ({spent})")
    out = args.out or RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{mode.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "mode": mode.name,
        "started": datetime.now(UTC).isoformat(),
        "seconds": round(total, 1),
        "timings": timings,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rows": [row.as_json() for row in rows],
    }
    out.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results: {out}")
    return 1 if any(row.metric == "failed" for row in rows) else 0


def ratios(rows: list[Row]) -> list[Row]:
    """signalhub signals/s divided by the limit, the framework floor and the naive baseline."""

    def value(bench: str, metric: str) -> float | None:
        for row in rows:
            if row.bench == bench and row.metric == metric:
                return row.value
        return None

    hub_rate = value("signalhub", "signals/s")
    if not hub_rate:
        return []
    found = []
    durable_rate = value("signalhub durable", "signals/s")
    if durable_rate:
        note = "signals/s, the durable broker (tansu on s3rver) vs memory, this run"
        found.append(Row("ratio", "durable ÷ memory", durable_rate / hub_rate, "x", note))
    for bench, metric, label in (
        ("limit", "records/s", "signalhub ÷ limit"),
        ("framework floor", "records/s", "signalhub ÷ framework floor"),
        ("framework floor", f"inputs/s at {FANOUT} out", "signalhub ÷ fan-out floor"),
        ("naive", "signals/s", "signalhub ÷ naive"),
    ):
        other = value(bench, metric)
        if other:
            found.append(Row("ratio", label, hub_rate / other, "x", "signals/s on one worker"))
    return found


def render(rows: list[Row]) -> str:
    """The results as an aligned text table."""
    lines = [f"{'bench':<18} {'metric':<28} {'value':>12} {'unit':<6} note", "-" * 102]
    for row in rows:
        if row.value is None:
            shown = "—"
        elif row.unit == "x":
            shown = f"{row.value:.2f}"
        elif row.value >= 100:
            shown = f"{row.value:,.0f}"
        else:
            shown = f"{row.value:.1f}"
        lines.append(f"{row.bench:<18} {row.metric:<28} {shown:>12} {row.unit:<6} {row.note}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
