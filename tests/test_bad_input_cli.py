"""``signalhub connector run --dry-run`` as a user runs it, over files mixing good and bad records.

Each file holds good records and one record of every kind of bad input (a byte that is not
UTF-8, year 0001, year 2099, an object in a text field) plus a record that leaves out a field
with a schema default. The run must complete: the good ones mapped, each bad one reported with
its reason, exit 0, and, being a dry run, no file written anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bad_input_support import gemeente_file, politie_file
from process_support import environment_without_settings, run_signalhub


@pytest.mark.parametrize(
    ("name", "file_name", "write", "good"),
    [
        ("gemeente", "gemeente.jsonl", gemeente_file, 3),
        ("politie", "politie.csv", politie_file, 2),
    ],
    ids=["jsonl", "csv"],
)
def test_a_dry_run_over_mixed_bad_input_completes_and_reports_every_reject(
    tmp_path: Path, name: str, file_name: str, write: Any, good: int
) -> None:
    source = tmp_path / "in" / file_name
    source.parent.mkdir()
    expected: dict[str, str] = write(source)
    state = tmp_path / "state"
    env = environment_without_settings() | {"SIGNALHUB_STATE_DIR": str(state)}

    result, _ = run_signalhub(
        ["connector", "run", name, "--dry-run", "--source", str(source)], env, tmp_path
    )

    assert result.returncode == 0, result.stderr
    total = good + len(expected)
    summary = f"{name}: read {total}, mapped (dry run) {good}, rejected {len(expected)}\n"
    assert result.stdout == summary
    reported = {line.split()[1]: line for line in result.stderr.splitlines()}
    assert set(reported) == set(expected), result.stderr
    for ref, reason in expected.items():
        assert reported[ref].startswith(f"rejected {ref} {reason}"), reported[ref]
    assert not state.exists()  # a dry run writes nothing: no rejects, no watermarks
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("in"),
        Path("in") / file_name,
    ]
