"""Waiting on processes and conditions in tests that start real ones, and running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as proc_stat:
            return proc_stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passed; its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def environment_without_settings() -> dict[str, str]:
    """This process's environment minus every ``SIGNALHUB_*`` variable (a user's clean shell)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SIGNALHUB_")}


def run_signalhub(
    args: list[str],
    env: dict[str, str],
    cwd: Path | None = None,
    timeout_s: float = 120.0,
    umask: int = -1,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``signalhub ARGS`` as a user does; the result and the seconds it took to exit.

    ``umask``: the shell's (-1: this process's), for tests of what the hub makes of it.
    """
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "signalhub", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        umask=umask,
    )
    return result, time.monotonic() - started
