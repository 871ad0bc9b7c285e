"""Per-subscriber credentials: pull-API tokens and webhook signing secrets.

Kept in one owner-only JSON file, ``<state_dir>/subscriber-secrets.json`` (mode 0600), because
they are the hub's own secrets, unlike subscriptions, which are reviewable configuration.

- A pull token is shown once, when it is issued or rotated; only its SHA-256 is stored, so the
  file alone does not let anyone read a subscriber's deliveries. Tokens are compared in constant
  time on their digests.
- A webhook secret is an HMAC key the hub signs with, so it is stored as is; it is created on
  first use and shown by ``signalhub subscriber webhook-secret NAME``.

The file is rewritten atomically (temp file + rename) and refused when group or others can read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signalhub.config import Settings
from signalhub.errors import ConfigError

__all__ = ["SECRETS_FILE", "SubscriberSecrets", "token_digest"]

SECRETS_FILE = "subscriber-secrets.json"
_TOKEN_BYTES = 32


def token_digest(token: str) -> str:
    """The SHA-256 (hex) under which a pull token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SubscriberSecrets:
    """The credentials file of one hub; re-read when it changed on disk (rotated elsewhere)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._data: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SubscriberSecrets:
        return cls(settings.state_dir / SECRETS_FILE)

    # -- pull tokens -----------------------------------------------------------------------

    def issue_token(self, subscriber: str) -> str:
        """Issue (or rotate) ``subscriber``'s pull token; returns it — the only time it is seen."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        with self._lock:
            data = self._load_locked()
            entry = data.setdefault(subscriber, {})
            entry["token_sha256"] = token_digest(token)
            entry["token_issued_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            self._save_locked(data)
        return token

    def subscriber_for_token(self, token: str) -> str | None:
        """The subscriber ``token`` belongs to, or None.

        Every stored digest is compared (constant time each, no early exit), so the time taken
        does not tell which subscribers exist or how close a guess was.
        """
        presented = token_digest(token).encode("ascii")
        with self._lock:
            data = self._load_locked()
        found: str | None = None
        for subscriber, entry in sorted(data.items()):
            stored = str(entry.get("token_sha256", "")).encode("ascii", "replace")
            if hmac.compare_digest(presented, stored) and stored:
                found = subscriber
        return found

    def has_token(self, subscriber: str) -> bool:
        with self._lock:
            return "token_sha256" in self._load_locked().get(subscriber, {})

    # -- webhook secrets -------------------------------------------------------------------

    def webhook_secret(self, subscriber: str) -> str:
        """``subscriber``'s webhook signing secret, created on first use."""
        with self._lock:
            data = self._load_locked()
            entry = data.setdefault(subscriber, {})
            secret = entry.get("webhook_secret")
            if not isinstance(secret, str) or not secret:
                secret = entry["webhook_secret"] = secrets.token_urlsafe(_TOKEN_BYTES)
                self._save_locked(data)
            return secret

    def rotate_webhook_secret(self, subscriber: str) -> str:
        """Replace ``subscriber``'s webhook secret; returns the new one."""
        with self._lock:
            data = self._load_locked()
            secret = secrets.token_urlsafe(_TOKEN_BYTES)
            data.setdefault(subscriber, {})["webhook_secret"] = secret
            self._save_locked(data)
            return secret

    # -- the file --------------------------------------------------------------------------

    def _load_locked(self) -> dict[str, dict[str, Any]]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._data = None, {}
            return {}
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{self.path} is readable by group or others — run `chmod 600 {self.path}` "
                "and rotate the subscriber tokens and webhook secrets it holds"
            )
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"cannot read {self.path}: {exc} — restore it from a backup or delete it "
                    "and issue new subscriber credentials"
                ) from exc
            subscribers = loaded.get("subscribers") if isinstance(loaded, dict) else None
            if not isinstance(subscribers, dict):
                raise ConfigError(f"{self.path} has no 'subscribers' object — fix or delete it")
            self._data, self._stamp = subscribers, stamp
        return {name: dict(entry) for name, entry in self._data.items()}

    def _save_locked(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps({"version": 1, "subscribers": data}, indent=2, sort_keys=True)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        info = self.path.stat()
        self._data, self._stamp = data, (info.st_ino, info.st_mtime_ns, info.st_size)
