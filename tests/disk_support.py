"""A small disk for tests: a tmpfs mounted for one test, a file that fills it, and the check
that matters on a full disk: no delivery carries a pseudonym the re-identification vault lacks.

Mounting needs root; where it fails the test is skipped with the reason, never run on the real
disk (filling that would hurt everything else on the machine).
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from hub_support import Delivery
from signalhub.config import Settings
from signalhub.pseudonym.vault import Vault

__all__ = ["PSEUDONYM", "delivered_pseudonyms", "fill", "missing_from_vault", "mounted_tmpfs"]

PSEUDONYM = re.compile(r"pn1\.k[1-9][0-9]*\.[a-z2-7]{32}")


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``, e.g. ``"2m"``) at ``mount``, unmounted after."""
    mount.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system says it is full."""
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as filler:
        while True:
            try:
                filler.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return


def delivered_pseudonyms(delivery: Delivery) -> set[str]:
    """Every pseudonym a delivery carries, in a field of its own or inside scrubbed free text."""
    return set(PSEUDONYM.findall(json.dumps(delivery.payload, default=str)))


def missing_from_vault(settings: Settings, deliveries: Iterable[Delivery]) -> list[str]:
    """``subscriber: pseudonym`` for every delivered pseudonym the hub's vault does not hold."""
    missing = []
    with Vault.open(settings) as vault:
        for delivery in deliveries:
            domain = delivery.delivery["pseudonym_domain"]
            for pseudonym in sorted(delivered_pseudonyms(delivery)):
                if vault.entry(domain, pseudonym) is None:
                    missing.append(f"{delivery.subscriber}: {pseudonym}")
    return missing
