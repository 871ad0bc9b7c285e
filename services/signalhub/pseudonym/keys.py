"""Pseudonym master keys: a versioned key ring, where it comes from, and how it rotates.

A :class:`KeyRing` holds every master key version the hub has used and says which one is
*current*: new pseudonyms are made with the current version, older versions stay so that old
pseudonyms can be recognised and mapped to new ones (``signalhub keys export-mapping``).

Where the ring comes from is a :class:`KeyProvider`; :func:`key_provider` picks one from the
settings, first match wins:

- ``SIGNALHUB_KEY_PROVIDER = "package.module:factory"``: ``factory(settings)`` returns a provider
  (a KMS or HSM adapter plugs in here);
- ``SIGNALHUB_MASTER_KEY``: ``[<version>:]<key>[,<version>:<key>...]``, hex or base64; the highest
  version is current;
- the key file ``SIGNALHUB_KEY_FILE`` (default ``<state_dir>/pseudonym.key``), refused unless only
  its owner can read it. Two formats (docs/pseudonymisation.md): the ring format
  (``current = n``, ``key.<n> = <key>``, ``created.<n> = <iso time>``) that ``signalhub keys``
  writes, and the single-key format (optional ``version = n`` and one key line).

No key ever appears in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from signalhub.config import Settings
from signalhub.errors import KeyProviderError
from signalhub.pseudonym.pseudonyms import MIN_KEY_BYTES, Pseudonymiser

__all__ = [
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "KeyRing",
    "default_key_file",
    "ensure_dev_key",
    "key_provider",
    "load_key_ring",
    "load_master_key",
    "read_owner_only",
    "rotation_mapping",
    "write_owner_only",
]

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_RING_LINE = re.compile(r"^(current|key\.[0-9]+|created\.[0-9]+)$")


@dataclass(frozen=True)
class KeyRing:
    """Master key versions and the current one; ``repr`` shows versions only, never a key."""

    current: int
    _keys: Mapping[int, bytes] = field(repr=False)
    created: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self._keys:
            raise KeyProviderError("the key ring holds no key — run `signalhub keys init`")
        for version, key in self._keys.items():
            _check_version(version)
            if len(key) < MIN_KEY_BYTES:
                raise KeyProviderError(
                    f"key version {version} is {len(key)} bytes, "
                    f"at least {MIN_KEY_BYTES} are needed"
                )
        if self.current not in self._keys:
            raise KeyProviderError(
                f"the current key version {self.current} is not in the key ring "
                f"(versions {', '.join(map(str, sorted(self._keys)))}) — fix the key file"
            )

    @classmethod
    def single(cls, key: bytes, version: int = 1) -> KeyRing:
        return cls(version, {version: bytes(key)})

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    def key(self, version: int | None = None) -> bytes:
        """The master key of ``version`` (default: the current one)."""
        wanted = self.current if version is None else version
        try:
            return self._keys[wanted]
        except KeyError:
            raise KeyProviderError(
                f"key version {wanted} is not in the key ring "
                f"(versions {', '.join(map(str, self.versions))})"
            ) from None

    def rotated(self, now: datetime | None = None) -> KeyRing:
        """A ring with a new random key as the next, current version (old versions kept)."""
        version = max(self._keys) + 1
        stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        return KeyRing(
            version,
            {**self._keys, version: secrets.token_bytes(MIN_KEY_BYTES)},
            {**self.created, version: stamp},
        )

    def to_text(self) -> str:
        """The ring in key-file format (this is the one place a key is turned into text)."""
        lines = [
            "# signalhub pseudonym key ring — owner-only (chmod 600); see docs/pseudonymisation.md",
            f"current = {self.current}",
        ]
        for version in self.versions:
            if version in self.created:
                lines.append(f"created.{version} = {self.created[version]}")
            lines.append(f"key.{version} = {self._keys[version].hex()}")
        return "\n".join(lines) + "\n"


@runtime_checkable
class KeyProvider(Protocol):
    """Where a key ring comes from: environment, file, or a KMS adapter."""

    def load(self) -> KeyRing:
        """The ring; :class:`KeyProviderError` when it is missing or invalid."""
        ...


@dataclass(frozen=True)
class EnvKeyProvider:
    """``SIGNALHUB_MASTER_KEY``: ``[<version>:]<key>`` entries separated by commas."""

    text: str = field(repr=False)

    def load(self) -> KeyRing:
        keys: dict[int, bytes] = {}
        for entry in self.text.split(","):
            head, sep, tail = entry.strip().partition(":")
            version, body = 1, entry.strip()
            if sep:
                if not head.isdigit():
                    raise KeyProviderError(
                        "SIGNALHUB_MASTER_KEY must be [<version>:]<hex or base64 key>"
                        "[,<version>:<key>...] — fix the variable"
                    )
                version, body = int(head), tail.strip()
            if version in keys:
                raise KeyProviderError(f"SIGNALHUB_MASTER_KEY names version {version} twice")
            keys[_check_version(version)] = _decode_key(body, "SIGNALHUB_MASTER_KEY")
        return KeyRing(max(keys), keys)


@dataclass(frozen=True)
class FileKeyProvider:
    """An owner-only key file; the one provider that ``keys init`` and ``keys rotate`` write."""

    path: Path

    def load(self) -> KeyRing:
        return _parse_key_file(read_owner_only(self.path, "key file", _MISSING_KEY), str(self.path))

    def save(self, ring: KeyRing, *, new: bool = False) -> None:
        """Write ``ring`` atomically with mode 0600; with ``new``, refuse to replace a file."""
        if new and self.path.exists():
            raise KeyProviderError(
                f"{self.path} already exists — use `signalhub keys rotate` to add a version"
            )
        write_owner_only(self.path, ring.to_text())


_MISSING_KEY = (
    "set SIGNALHUB_MASTER_KEY or SIGNALHUB_KEY_FILE, run `signalhub keys init` "
    "(or run the embedded demo, which creates a development key)"
)


def default_key_file(settings: Settings) -> Path:
    """``SIGNALHUB_KEY_FILE`` if set, else ``<state_dir>/pseudonym.key``."""
    return settings.key_file or settings.state_dir / "pseudonym.key"


def key_provider(settings: Settings) -> KeyProvider:
    """The provider the settings select (plug-in, environment, then key file)."""
    if settings.key_provider:
        module_name, _, attribute = settings.key_provider.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise KeyProviderError(
                f"SIGNALHUB_KEY_PROVIDER={settings.key_provider}: cannot import it — "
                "expected 'package.module:factory'"
            ) from exc
        provider = factory(settings)
        if not isinstance(provider, KeyProvider):
            raise KeyProviderError(
                f"SIGNALHUB_KEY_PROVIDER={settings.key_provider} did not return a KeyProvider"
            )
        return provider
    if settings.master_key is not None:
        return EnvKeyProvider(settings.master_key.get_secret_value())
    return FileKeyProvider(default_key_file(settings))


def load_key_ring(settings: Settings) -> KeyRing:
    """The key ring from the provider the settings select."""
    return key_provider(settings).load()


def load_master_key(settings: Settings) -> tuple[bytes, int]:
    """The current master key and its version, from the provider the settings select.

    Raises :class:`KeyProviderError` when no key is configured, the file is readable by group or
    others, or the content is not a key of at least 32 bytes.
    """
    ring = load_key_ring(settings)
    return ring.key(), ring.current


def rotation_mapping(
    ring: KeyRing, domain: str, kind: str, values: Iterable[str], old: int, new: int
) -> list[tuple[str, str]]:
    """``(old pseudonym, new pseudonym)`` for each value, in one domain, de-duplicated in order.

    This is what lets a subscriber keep its links across a key rotation without the hub
    handing it an identifier: it receives only pairs of its own domain's pseudonyms.
    """
    before = Pseudonymiser(ring.key(old), old)
    after = Pseudonymiser(ring.key(new), new)
    pairs: dict[str, str] = {}
    for value in values:
        if not value.strip():
            continue
        pairs.setdefault(
            before.pseudonym(domain, kind, value), after.pseudonym(domain, kind, value)
        )
    return list(pairs.items())


def read_owner_only(path: Path, what: str, remedy: str) -> str:
    """The text of a secret file, refused unless it is a regular file only its owner can read."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyProviderError(f"no {what}: {path} does not exist — {remedy}") from None
    except OSError as exc:
        raise KeyProviderError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise KeyProviderError(f"{what} {path} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyProviderError(
            f"{what} {path} is accessible to group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}) — run `chmod 600 {path}` and retry"
        )
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProviderError(f"cannot read {what} {path} as UTF-8 text") from exc


def write_owner_only(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, created 0600 (never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


def _parse_key_file(text: str, where: str) -> KeyRing:
    entries: list[tuple[str, str]] = []
    bare: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        if sep and (name.strip() == "version" or _RING_LINE.match(name.strip())):
            entries.append((name.strip(), value.strip()))
        else:
            bare.append(line)
    if any(name != "version" for name, _ in entries):
        if bare:
            raise KeyProviderError(f"key file {where}: a bare key line in a key-ring file")
        return _parse_ring(entries, where)
    version = 1
    for _, value in entries:
        if not value.isdigit():
            raise KeyProviderError(f"key file {where}: version must be a positive integer")
        version = int(value)
    if len(bare) != 1:
        raise KeyProviderError(
            f"key file {where} must hold exactly one key line (found {len(bare)}) — "
            "see docs/pseudonymisation.md"
        )
    return KeyRing.single(_decode_key(bare[0], f"key file {where}"), _check_version(version))


def _parse_ring(entries: list[tuple[str, str]], where: str) -> KeyRing:
    keys: dict[int, bytes] = {}
    created: dict[int, str] = {}
    current: int | None = None
    for name, value in entries:
        if name in ("current", "version"):
            if not value.isdigit():
                raise KeyProviderError(f"key file {where}: {name} must be a positive integer")
            current = _check_version(int(value))
            continue
        kind, _, number = name.partition(".")
        version = _check_version(int(number))
        if kind == "created":
            created[version] = value
        elif version in keys:
            raise KeyProviderError(f"key file {where}: key version {version} appears twice")
        else:
            keys[version] = _decode_key(value, f"key file {where}, key.{version}")
    if not keys:
        raise KeyProviderError(f"key file {where} holds no key.<n> line")
    return KeyRing(current if current is not None else max(keys), keys, created)


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
    """Create a random owner-only development key ring at ``path`` unless one exists.

    For the embedded demo only: production keys come from ``signalhub keys init``, the
    environment or a key provider.
    """
    if path.exists():
        return
    ring = KeyRing.single(secrets.token_bytes(MIN_KEY_BYTES))
    content = (
        "# signalhub development pseudonym key, created by the embedded demo.\n"
        "# Not for production: pseudonyms made with it are only as safe as this file.\n"
        + ring.to_text()
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first; fine
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(content)
