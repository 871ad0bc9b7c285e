"""The re-identification vault: which identifier is behind a pseudonym, kept encrypted.

Pseudonyms are one-way (HMAC), so to answer an approved re-identification request the hub must
remember what it pseudonymised. The enforcer reports every pseudonym it issues through a
:class:`VaultSink` (a :class:`~signalhub.enforcer.projection.PseudonymSink`); the vault stores, per
``(domain, pseudonym)``, the key version and pii kind in clear and the identifier sealed with
AES-256-GCM. The associated data binds the ciphertext to its domain, pseudonym and kind, so a
row copied to another pseudonym or domain does not decrypt.

The vault key is separate from the pseudonym keys: an owner-only file ``SIGNALHUB_VAULT_KEY_FILE``
(default ``<state_dir>/vault.key``), 32 bytes in hex. Whoever holds the pseudonym keys cannot read
the vault, and the other way round. The vault file is ``<state_dir>/vault.sqlite`` (WAL, so
several enforcer workers can write it); re-identification requests and their audit trail live
in the same file (:mod:`signalhub.pseudonym.reidentify`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from signalhub.config import Settings
from signalhub.errors import KeyProviderError, SignalhubError, StateWriteError
from signalhub.pseudonym.keys import read_owner_only
from signalhub.pseudonym.pseudonyms import pseudonym_key_version

__all__ = [
    "VAULT_KEY_BYTES",
    "Vault",
    "VaultEntry",
    "VaultSink",
    "ensure_vault_key",
    "load_vault_key",
    "vault_key_file",
    "vault_path",
]

VAULT_KEY_BYTES = 32
_NONCE_BYTES = 12
_SCHEMA = """
CREATE TABLE IF NOT EXISTS pseudonyms (
    domain      TEXT NOT NULL,
    pseudonym   TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    sealed      BLOB NOT NULL,
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (domain, pseudonym)
) WITHOUT ROWID;
"""


def vault_key_file(settings: Settings) -> Path:
    """``SIGNALHUB_VAULT_KEY_FILE`` if set, else ``<state_dir>/vault.key``."""
    return settings.vault_key_file or settings.state_dir / "vault.key"


def vault_path(settings: Settings) -> Path:
    return settings.state_dir / "vault.sqlite"


def load_vault_key(settings: Settings) -> bytes:
    """The vault's AES-256 key from its owner-only file; :class:`KeyProviderError` otherwise."""
    path = vault_key_file(settings)
    text = read_owner_only(
        path, "vault key file", "run `signalhub keys init` or set SIGNALHUB_VAULT_KEY_FILE"
    )
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    try:
        key = bytes.fromhex(lines[0]) if len(lines) == 1 else b""
    except ValueError:
        key = b""
    if len(key) != VAULT_KEY_BYTES:
        raise KeyProviderError(
            f"vault key file {path} must hold one line of {VAULT_KEY_BYTES * 2} hex digits"
        )
    return key


def ensure_vault_key(path: Path) -> bool:
    """Create a random owner-only vault key at ``path`` unless one exists; True if created."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(
            "# signalhub re-identification vault key (AES-256-GCM); keep apart from the "
            "pseudonym keys\n" + secrets.token_hex(VAULT_KEY_BYTES) + "\n"
        )
    return True


@dataclass(frozen=True)
class VaultEntry:
    """What the vault knows of one pseudonym; ``repr`` never shows the identifier."""

    domain: str
    pseudonym: str
    key_version: int
    kind: str
    first_seen: str


class Vault:
    """The encrypted pseudonym -> identifier store (one SQLite file)."""

    def __init__(self, path: Path, key: bytes) -> None:
        if len(key) != VAULT_KEY_BYTES:
            raise KeyProviderError(f"the vault key must be {VAULT_KEY_BYTES} bytes")
        self.path = path
        self._aead = AESGCM(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL syncs the WAL at every commit: a written batch survives a process crash and a
            # power loss. Cheap enough because put_many commits once per batch, not once per row.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA busy_timeout=10000")
            self.db.executescript(_SCHEMA)
            os.chmod(path, 0o600)
        except (sqlite3.Error, OSError) as exc:
            raise StateWriteError(f"vault cannot be opened: {_cause(exc)} — {path}") from exc

    @classmethod
    def open(cls, settings: Settings) -> Vault:
        return cls(vault_path(settings), load_vault_key(settings))

    def __repr__(self) -> str:
        return f"Vault({self.path})"

    def put_many(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Store ``(domain, kind, value, pseudonym)`` rows in one transaction, durable when it
        returns; a known pseudonym keeps its first entry.

        :class:`StateWriteError` when the file cannot be written (disk full, read-only, I/O
        error, locked past the busy timeout): then none of the rows is stored.
        """
        now = datetime.now(UTC).isoformat(timespec="seconds")
        sealed = []
        for domain, kind, value, pseudonym in rows:
            nonce = secrets.token_bytes(_NONCE_BYTES)
            ciphertext = self._aead.encrypt(
                nonce, value.encode("utf-8"), _aad(domain, pseudonym, kind)
            )
            version = pseudonym_key_version(pseudonym)
            sealed.append((domain, pseudonym, version, kind, nonce, ciphertext, now))
        # One explicit transaction: the connection is in autocommit mode (isolation_level=None),
        # where ``with self.db`` opens none and each row would be a commit with its own WAL sync.
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    "INSERT OR IGNORE INTO pseudonyms VALUES (?, ?, ?, ?, ?, ?, ?)", sealed
                )
                self.db.execute("COMMIT")
            except BaseException:
                self._roll_back()
                raise
        except (sqlite3.Error, OSError) as exc:
            raise StateWriteError(f"vault write failed: {_cause(exc)} — {self.path}") from exc

    def _roll_back(self) -> None:
        """End a failed transaction, if SQLite has not already (it may after SQLITE_FULL).

        A COMMIT that failed leaves the transaction open; without this the next BEGIN would
        fail with "cannot start a transaction within a transaction" instead of the real cause.
        """
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    def entry(self, domain: str, pseudonym: str) -> VaultEntry | None:
        row = self.db.execute(
            "SELECT key_version, kind, first_seen FROM pseudonyms WHERE domain=? AND pseudonym=?",
            (domain, pseudonym),
        ).fetchone()
        return None if row is None else VaultEntry(domain, pseudonym, row[0], row[1], row[2])

    def identifier(self, domain: str, pseudonym: str) -> str:
        """The identifier behind ``pseudonym`` in ``domain``; only :mod:`reidentify` calls this."""
        row = self.db.execute(
            "SELECT kind, nonce, sealed FROM pseudonyms WHERE domain=? AND pseudonym=?",
            (domain, pseudonym),
        ).fetchone()
        if row is None:
            raise SignalhubError(f"the vault holds no pseudonym {pseudonym} in domain {domain}")
        try:
            plain = self._aead.decrypt(row[1], row[2], _aad(domain, pseudonym, row[0]))
        except InvalidTag:
            raise KeyProviderError(
                "a vault entry does not decrypt: wrong vault key or tampered row — "
                "check SIGNALHUB_VAULT_KEY_FILE"
            ) from None
        return plain.decode("utf-8")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _cause(exc: BaseException) -> str:
    """What went wrong, for the operator: SQLite's message, or the OS error without its path."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _aad(domain: str, pseudonym: str, kind: str) -> bytes:
    return f"signalhub/vault/v1\0{domain}\0{pseudonym}\0{kind}".encode()


class VaultSink:
    """The enforcer's pseudonym sink (:class:`~signalhub.enforcer.projection.PseudonymSink`).

    Rows are buffered and written in one transaction by :meth:`flush` (or when ``batch`` rows
    are waiting). The enforcer flushes after each batch of signals and produces the batch's
    deliveries only once that returned, so no delivery carries a pseudonym the vault lacks; a
    failed write raises :class:`StateWriteError` and keeps the rows for the next flush. A
    pseudonym already written by this process is skipped (bounded memory).
    """

    def __init__(self, vault: Vault, *, batch: int = 500, remember: int = 200_000) -> None:
        self._vault = vault
        self._batch = batch
        self._remember = remember
        self._pending: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        self._written: set[tuple[str, str]] = set()

    def record(self, domain: str, kind: str, value: str, pseudonym: str) -> None:
        key = (domain, pseudonym)
        if key in self._written or key in self._pending:
            return
        self._pending[key] = (domain, kind, value, pseudonym)
        if len(self._pending) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Write every buffered row; durable when it returns, :class:`StateWriteError` if not."""
        if self._pending:
            self._vault.put_many(list(self._pending.values()))
            # Remembered as written only now: after a failed write they are written again.
            self._written.update(self._pending)
            self._pending = {}
        if len(self._written) > self._remember:
            self._written.clear()

    def close(self) -> None:
        self.flush()
        self._vault.close()
