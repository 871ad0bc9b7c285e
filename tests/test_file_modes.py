"""Clear data at rest is owner-only: what ``signalhub demo --out`` leaves behind, checked by mode.

The demo runs as a user runs it (a separate process, started with the common umask 022) from a
fresh state directory; every file and directory it and the roles it started created, under the
state directory and the out directory, must have no group or other permission bit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from process_support import environment_without_settings, run_signalhub
from signalhub.apps.demo import private_state_dir

DEMO_TIMEOUT_S = 240


def _offenders(*roots: Path) -> list[str]:
    """``mode path`` of every entry under (and including) ``roots`` open to group or others."""
    found = []
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077 and not path.is_symlink():
                found.append(f"{mode:04o} {path}")
    return found


@pytest.mark.integration
def test_the_demo_leaves_nothing_readable_by_group_or_others(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "out"
    env = environment_without_settings() | {"SIGNALHUB_STATE_DIR": str(state)}

    result, _ = run_signalhub(
        ["demo", "--out", str(out)], env, tmp_path, timeout_s=DEMO_TIMEOUT_S, umask=0o022
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "rejects.jsonl").stat().st_size > 0  # the raw rows with BSNs are there
    assert (state / "bundling.sqlite").exists()
    offenders = _offenders(state, out)
    assert offenders == [], "open to group or others:\n" + "\n".join(offenders)


def test_a_state_directory_left_open_is_made_owner_only_with_a_warning(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    said: list[str] = []

    private_state_dir(state, said.append)

    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert said == [
        f"  warning: the state directory {state} was open to others (mode 0755); "
        "made it owner-only (0700)"
    ]
    private_state_dir(state, said.append)
    assert len(said) == 1  # already private: nothing to say


def test_a_new_state_directory_is_created_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    old = os.umask(0o022)
    try:
        private_state_dir(state, print)
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
