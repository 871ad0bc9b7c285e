"""A policy version as one value: its files and the version hash computed over them, once.

A :class:`PolicyBundle` is made from a directory (:func:`bundle_from_dir`), which is the only
place the version hash is computed from files. Everything downstream — validation, the record on
the ``policies`` topic, the history store, the engines and every decision they stamp — takes the
bundle's ``version`` as it is. A bundle read back from the topic or the store is checked once
with :meth:`PolicyBundle.verified` (its files must hash to the version it claims, fail closed).

Layout of a policy directory (and of a bundle's relative paths)::

    **/*.rego            policy modules (``*_test.rego`` are tests, not loaded for decisions)
    data/<name>.json     data document placed at ``data.signalhub.<name>``
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from signalhub.errors import PolicyError

__all__ = [
    "PolicyBundle",
    "bundle_from_dir",
    "is_test_module",
    "policy_version",
    "read_policy_files",
    "rules_and_data",
]

_FORMAT = 1


def is_test_module(name: str) -> bool:
    """``*_test.rego``: a Rego test module (not part of the policy that decides)."""
    return name.endswith("_test.rego")


def _is_policy_file(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return name.endswith(".rego") or (
        len(parts) == 2 and parts[0] == "data" and name.endswith(".json")
    )


def read_policy_files(policies_dir: Path) -> dict[str, str]:
    """Every policy file under ``policies_dir``, tests included: relative path -> text.

    Read as bytes and decoded, so a file's text hashes to exactly its bytes.
    """
    if not policies_dir.is_dir():
        raise PolicyError(f"policy directory {policies_dir} does not exist — check SIGNALHUB_HOME")
    paths = [*policies_dir.rglob("*.rego"), *(policies_dir / "data").glob("*.json")]
    files: dict[str, str] = {}
    for path in sorted(paths):
        name = path.relative_to(policies_dir).as_posix()
        try:
            files[name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"{name}: not UTF-8 text ({exc.reason}) — fix the file") from exc
    return files


def rules_and_data(files: Mapping[str, str]) -> dict[str, str]:
    """The files that decide: Rego modules and data, tests left out."""
    return {
        name: text
        for name, text in files.items()
        if _is_policy_file(name) and not is_test_module(name)
    }


def policy_version(files: Mapping[str, str]) -> str:
    """``sha256:<16 hex>`` over the sorted relative paths and contents of the rules and data.

    Tests are left out, so adding a test does not make a new version. Paths sort by their parts,
    as they always have, so a version once published keeps its value.
    """
    digest = hashlib.sha256()
    for name in sorted(rules_and_data(files), key=lambda n: PurePosixPath(n).parts):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(files[name].encode("utf-8"))
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()[:16]


@dataclass(frozen=True)
class PolicyBundle:
    """One policy version: its files (relative path -> text) and who published it, why, when."""

    version: str
    files: dict[str, str]
    message: str = ""
    author: str = ""
    published_at: str = ""

    def to_bytes(self) -> bytes:
        body = {
            "format": _FORMAT,
            "version": self.version,
            "message": self.message,
            "author": self.author,
            "published_at": self.published_at,
            "files": self.files,
        }
        return json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> PolicyBundle:
        """Parse a bundle record from the topic; :class:`PolicyError` when it is not one.

        Parsing only: call :meth:`verified` before trusting its version.
        """
        try:
            body = json.loads(data)
            files = body["files"]
            if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()
            ):
                raise TypeError("files is not an object of texts")
            return cls(
                str(body["version"]),
                dict(files),
                str(body.get("message", "")),
                str(body.get("author", "")),
                str(body.get("published_at", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PolicyError(f"not a policy bundle: {exc}") from exc

    def verified(self) -> PolicyBundle:
        """This bundle, once its paths are safe and its files hash to the version it claims.

        The integrity check of a bundle read back (topic, history store): a tampered or
        corrupted record raises :class:`PolicyError`, and the caller fails closed.
        """
        for name in self.files:
            path = PurePosixPath(name)
            if not name or path.is_absolute() or ".." in path.parts:
                raise PolicyError(f"policy bundle {self.version}: unsafe file path {name!r}")
        actual = policy_version(self.files)
        if actual != self.version:
            raise PolicyError(
                f"policy bundle claims version {self.version} but its files hash to {actual}"
                " — it was altered after publishing; publish it again with `policy publish`"
            )
        return self

    def stamped(self, message: str, author: str) -> PolicyBundle:
        """The same files, with a publish message, author and time."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return PolicyBundle(self.version, dict(self.files), message, author, now)


def bundle_from_dir(policies_dir: Path) -> PolicyBundle:
    """Every policy file under ``policies_dir`` (tests included) and the version of the rules."""
    files = read_policy_files(policies_dir)
    return PolicyBundle(policy_version(files), files)
