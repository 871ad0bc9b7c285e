"""Keyed pseudonyms per subscriber domain, and where the master key comes from.

A pseudonym is ``pn1.k<key version>.<32 base32 chars>``: HMAC-SHA256 over the pii kind and the
normalised value, with a key derived by HKDF-SHA256 from the master key, the pseudonym domain and
the key version, truncated to 20 bytes. Within one domain the same person always gets the same
pseudonym, so a subscriber can link its signals; across domains the pseudonyms are unlinkable
without the master key. The key version in the pseudonym says which key made it, so keys can be
rotated and old pseudonyms recognised. Re-identification is not done here: it is a separate,
audited act.

Master key sources, first match wins (see docs/pseudonymisation.md):

- ``SIGNALHUB_MASTER_KEY``: ``[<version>:]<key>``, key in hex or base64, at least 32 bytes;
- ``SIGNALHUB_KEY_FILE`` (default ``<state_dir>/pseudonym.key``), owner-only permissions, with
  an optional ``version = <n>`` line, ``#`` comments, and one line holding the key.

Neither a key nor a value to pseudonymise ever appears in a message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import stat
import unicodedata
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from signalhub.config import Settings
from signalhub.errors import KeyProviderError

__all__ = [
    "MIN_KEY_BYTES",
    "Pseudonymiser",
    "default_key_file",
    "ensure_dev_key",
    "load_master_key",
    "normalise",
    "pseudonym_key_version",
]

#: A master key shorter than this is refused (256 bits).
MIN_KEY_BYTES = 32
_SCHEME = "pn1"
_DIGEST_BYTES = 20
_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PSEUDONYM = re.compile(r"^pn1\.k([1-9][0-9]*)\.([a-z2-7]{32})$")
_COMPACT_KINDS = frozenset({"bsn", "postcode"})
_COMPACT = re.compile(r"[\s.\-]+")
_SPACES = re.compile(r"\s+")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def normalise(kind: str, value: str) -> str:
    """The form of a value that is pseudonymised, so trivial spelling differences still link.

    Unicode NFC, whitespace stripped and collapsed, case-folded; for ``bsn`` and ``postcode``
    spaces, dots and hyphens are removed, and an 8-digit BSN gets back its lost leading zero.
    """
    text = unicodedata.normalize("NFC", value).strip().casefold()
    if kind in _COMPACT_KINDS:
        text = _COMPACT.sub("", text)
        if kind == "bsn" and len(text) == 8 and text.isdigit():
            text = "0" + text
        return text
    return _SPACES.sub(" ", text)


class Pseudonymiser:
    """Makes pseudonyms with one master key version; derived domain keys are cached."""

    def __init__(self, master_key: bytes, key_version: int = 1) -> None:
        if len(master_key) < MIN_KEY_BYTES:
            raise KeyProviderError(
                f"master key too short: need at least {MIN_KEY_BYTES} bytes — "
                "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        if key_version < 1:
            raise KeyProviderError("key version must be a positive integer")
        self._master = bytes(master_key)
        self.key_version = key_version
        self._domain_keys: dict[str, bytes] = {}

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymiser(key_version={self.key_version})"

    def pseudonym(self, domain: str, kind: str, value: str) -> str:
        """The pseudonym of ``value`` (a pii ``kind`` such as ``"bsn"``) in ``domain``."""
        message = kind.encode() + b"\0" + normalise(kind, value).encode("utf-8")
        digest = hmac.new(self._domain_key(domain), message, hashlib.sha256).digest()
        body = base64.b32encode(digest[:_DIGEST_BYTES]).decode("ascii").lower()
        return f"{_SCHEME}.k{self.key_version}.{body}"

    def _domain_key(self, domain: str) -> bytes:
        key = self._domain_keys.get(domain)
        if key is None:
            if not _DOMAIN.match(domain):
                raise ValueError("pseudonym domain must match [a-z0-9][a-z0-9_-]{0,62}")
            info = b"signalhub/pseudonym/" + domain.encode() + b"/k%d" % self.key_version
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
                self._master
            )
            self._domain_keys[domain] = key
        return key


def pseudonym_key_version(pseudonym: str) -> int:
    """The master key version that made ``pseudonym``; ValueError if it is not one of ours."""
    match = _PSEUDONYM.match(pseudonym)
    if match is None:
        raise ValueError("not a signalhub pseudonym (expected pn1.k<version>.<32 base32>)")
    return int(match.group(1))


def default_key_file(settings: Settings) -> Path:
    """``SIGNALHUB_KEY_FILE`` if set, else ``<state_dir>/pseudonym.key``."""
    return settings.key_file or settings.state_dir / "pseudonym.key"


def load_master_key(settings: Settings) -> tuple[bytes, int]:
    """The master key and its version, from the environment or the key file.

    Raises :class:`KeyProviderError` when no key is configured, the file is readable by group or
    others, or the content is not a key of at least 32 bytes.
    """
    if settings.master_key is not None:
        return _parse_env_key(settings.master_key.get_secret_value())
    return _read_key_file(default_key_file(settings))


def _parse_env_key(text: str) -> tuple[bytes, int]:
    version = 1
    head, sep, tail = text.strip().partition(":")
    if sep:
        if not head.isdigit():
            raise KeyProviderError(
                "SIGNALHUB_MASTER_KEY must be [<version>:]<hex or base64 key> — fix the variable"
            )
        version, text = int(head), tail
    return _decode_key(text.strip(), "SIGNALHUB_MASTER_KEY"), _check_version(version)


def _read_key_file(path: Path) -> tuple[bytes, int]:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyProviderError(
            f"no pseudonym master key: {path} does not exist — set SIGNALHUB_MASTER_KEY or "
            "SIGNALHUB_KEY_FILE (or run the embedded demo, which creates a development key)"
        ) from None
    except OSError as exc:
        raise KeyProviderError(f"cannot read key file {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise KeyProviderError(f"key file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyProviderError(
            f"key file {path} is accessible to group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}) — run `chmod 600 {path}` and retry"
        )
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProviderError(f"cannot read key file {path} as UTF-8 text") from exc
    return _parse_key_file(text, str(path))


def _parse_key_file(text: str, where: str) -> tuple[bytes, int]:
    version = 1
    keys: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        if sep and name.strip() == "version":
            if not value.strip().isdigit():
                raise KeyProviderError(f"key file {where}: version must be a positive integer")
            version = int(value.strip())
        else:
            keys.append(line)
    if len(keys) != 1:
        raise KeyProviderError(
            f"key file {where} must hold exactly one key line (found {len(keys)}) — "
            "see docs/pseudonymisation.md"
        )
    return _decode_key(keys[0], f"key file {where}"), _check_version(version)


def _decode_key(text: str, where: str) -> bytes:
    """Hex if the text is all hex digits (even length), otherwise strict base64."""
    try:
        if _HEX.match(text) and len(text) % 2 == 0:
            key = bytes.fromhex(text)
        else:
            key = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise KeyProviderError(f"{where}: the key is neither hex nor base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise KeyProviderError(
            f"{where}: the key is {len(key)} bytes, at least {MIN_KEY_BYTES} are needed"
        )
    return key


def _check_version(version: int) -> int:
    if version < 1:
        raise KeyProviderError("key version must be a positive integer")
    return version


def ensure_dev_key(path: Path) -> None:
    """Create a random owner-only development key file at ``path`` unless one exists.

    For the embedded demo only: production keys come from the environment or a managed file.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    content = (
        "# signalhub development pseudonym key, created by the embedded demo.\n"
        "# Not for production: pseudonyms made with it are only as safe as this file.\n"
        "version = 1\n"
        f"{secrets.token_hex(MIN_KEY_BYTES)}\n"
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first; fine
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(content)
