"""A security officer's working copy of the policy, and the checks run on it before publishing.

Each console user edits a draft under ``<state_dir>/console/drafts/<user>/policies/``, seeded
from the version in force (the ``policies`` topic, else ``policies/``). Checking, testing,
dry-running and publishing all call the same functions as ``signalhub policy ...``
(:mod:`signalhub.policy.engine`, :mod:`signalhub.policy.rego_tests`,
:mod:`signalhub.policy.lifecycle`, :mod:`signalhub.policy.diff`):
the console adds no rules of its own. The draft directory is named ``policies`` because the
engine reports ``policies/<file>:<line>``, which is how an error is put at its line here.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from signalhub.errors import PolicyError
from signalhub.policy.bundle import PolicyBundle
from signalhub.policy.engine import check_policies
from signalhub.policy.rego_tests import RegoTestResult, run_rego_tests

__all__ = ["PolicyDraft", "Problem", "locate_problems"]

_LOCATION = re.compile(r"^policies/(?P<file>[^:]+):(?P<line>\d+):\s*(?P<message>.*)$", re.DOTALL)
_EDITABLE = (".rego", ".json")


@dataclass(frozen=True)
class Problem:
    """One check error, placed at its file and line where the engine says where."""

    file: str | None
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else ""
        return where + self.message


def locate_problems(messages: list[str]) -> list[Problem]:
    """Split ``policies/<file>:<line>: message`` into its parts (other messages stay whole)."""
    problems = []
    for message in messages:
        match = _LOCATION.match(message.strip())
        if match:
            problems.append(
                Problem(match.group("file"), int(match.group("line")), match.group("message"))
            )
        else:
            problems.append(Problem(None, None, message))
    return problems


class PolicyDraft:
    """One user's editable copy of the policy files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_user(cls, console_dir: Path, user: str) -> PolicyDraft:
        return cls(console_dir / "drafts" / user / "policies")

    @property
    def exists(self) -> bool:
        return self.root.is_dir() and any(self.root.rglob("*.rego"))

    def seed(self, bundle: PolicyBundle) -> None:
        """Replace the draft with ``bundle``'s files (the version to start editing from)."""
        if self.root.exists():
            shutil.rmtree(self.root)
        for name, text in bundle.files.items():
            self.write(name, text, create=True)

    def files(self) -> list[str]:
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and path.suffix in _EDITABLE
        )

    def _path(self, name: str, *, create: bool = False) -> Path:
        target = (self.root / name).resolve()
        if not target.is_relative_to(self.root.resolve()) or target.suffix not in _EDITABLE:
            raise PolicyError(f"{name!r} is not a policy file of this draft")
        if not create and not target.is_file():
            raise PolicyError(f"the draft has no file {name!r}")
        return target

    def read(self, name: str) -> str:
        return self._path(name).read_text("utf-8")

    def write(self, name: str, text: str, *, create: bool = False) -> None:
        target = self._path(name, create=create)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Browsers send CRLF from a textarea; the engine and the version hash see LF.
        target.write_text(text.replace("\r\n", "\n"), "utf-8")

    def check(self) -> list[Problem]:
        """Parse and compile (``signalhub policy check``); empty when it loads."""
        return locate_problems(check_policies(self.root))

    def test(self) -> list[RegoTestResult]:
        """The Rego tests (``signalhub policy test``)."""
        return run_rego_tests(self.root)
