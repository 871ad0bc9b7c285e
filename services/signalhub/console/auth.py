"""Who may use the console, and as what: users, passwords, sessions, CSRF and login throttling.

* Users live in ``<state_dir>/console/users.json`` (owner-only), created with
  ``signalhub console user add NAME --role ROLE``. Passwords are hashed with scrypt
  (``hashlib.scrypt``, n=2**14, r=8, p=1, 16-byte salt) and compared in constant time.
* A session is a signed cookie: ``base64url(JSON {user, role, exp, csrf}) . HMAC-SHA256``, keyed
  by ``<state_dir>/console/secret.key`` (32 random bytes, owner-only). It expires after
  ``SIGNALHUB_SESSION_TTL_S``; the user's role is re-read from the users file on every request,
  so removing a user or changing a role takes effect at once.
* Every state-changing request carries the session's CSRF token (form field ``csrf_token`` or
  header ``X-CSRF-Token``); the login form uses a double-submit cookie instead.
* Failed logins are counted per (user, client address); past ``SIGNALHUB_LOGIN_MAX_FAILURES``
  within the window, logins are refused until the window has passed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from signalhub.errors import ConfigError

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "LoginThrottle",
    "Session",
    "SessionSigner",
    "User",
    "UserStore",
    "allowed",
    "console_dir",
    "hash_password",
    "verify_password",
]

ROLES = ("operator", "security_officer", "auditor")
#: What each role may do. Operators run the pipeline but never change policy; auditors read the
#: audit only; nobody, whatever the role, is shown a clear identifier.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view_operations": frozenset({"operator", "security_officer"}),
    "replay_dlq": frozenset({"operator"}),
    "view_policy": frozenset({"security_officer"}),
    "change_policy": frozenset({"security_officer"}),
    "read_audit": frozenset({"security_officer", "auditor"}),
}
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_MIN_PASSWORD = 10


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, frozenset())


def console_dir(state_dir: Path) -> Path:
    """``<state_dir>/console``: users, the session key, drafts and the console audit log."""
    return state_dir / "console"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(bytes.fromhex(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual.hex(), digest)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_at: str


class UserStore:
    """The console's users, in one owner-only JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> UserStore:
        return cls(console_dir(state_dir) / "users.json")

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            body = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the console users file {self.path}: {exc} — restore it or remove "
                "it and add the users again with `signalhub console user add`"
            ) from exc
        users = body.get("users", {})
        return users if isinstance(users, dict) else {}

    def add(self, name: str, role: str, password: str) -> User:
        """Add or replace a user; :class:`ConfigError` for a bad name, role or short password."""
        if not _NAME.match(name):
            raise ConfigError(
                f"user name {name!r} is not allowed — use 2-32 lowercase letters, digits, . _ -"
            )
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r} — choose one of {', '.join(ROLES)}")
        if len(password) < _MIN_PASSWORD:
            raise ConfigError(
                f"the password is too short — use at least {_MIN_PASSWORD} characters"
            )
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            users = self._read()
            users[name] = {"role": role, "hash": hash_password(password), "created_at": created}
            _write_private(self.path, json.dumps({"users": users}, indent=2).encode("utf-8"))
        return User(name, role, created)

    def get(self, name: str) -> User | None:
        entry = self._read().get(name)
        if entry is None:
            return None
        return User(name, entry["role"], entry.get("created_at", ""))

    def list(self) -> list[User]:
        return [
            User(name, entry["role"], entry.get("created_at", ""))
            for name, entry in sorted(self._read().items())
        ]

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password matches; a dummy hash is checked for unknown names too,
        so the answer takes as long either way."""
        entry = self._read().get(name)
        encoded = entry["hash"] if entry else _dummy_hash()
        ok = verify_password(password, encoded)
        if entry is None or not ok:
            return None
        return User(name, entry["role"], entry.get("created_at", ""))


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not-a-password", salt=b"\x00" * 16)


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    expires: int
    csrf: str


class SessionSigner:
    """Signs and checks session cookies with a key kept under the state directory."""

    def __init__(self, key: bytes, *, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._ttl = ttl_s
        self._clock = clock

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, ttl_s: int) -> SessionSigner:
        path = console_dir(state_dir) / "secret.key"
        if not path.exists():
            _write_private(path, secrets.token_bytes(32))
        return cls(path.read_bytes(), ttl_s=ttl_s)

    def issue(self, user: User) -> tuple[str, Session]:
        session = Session(
            user.name, user.role, int(self._clock()) + self._ttl, secrets.token_urlsafe(24)
        )
        body = json.dumps(
            {"u": session.user, "r": session.role, "exp": session.expires, "csrf": session.csrf},
            separators=(",", ":"),
        ).encode("utf-8")
        payload = base64.urlsafe_b64encode(body).decode("ascii").rstrip("=")
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie that is well-signed and unexpired, else None."""
        if not cookie or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(str(body["u"]), str(body["r"]), int(body["exp"]), str(body["csrf"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > self._clock() else None

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


class LoginThrottle:
    """Failed logins per (user, address) in a sliding window; refuse past the limit."""

    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_failures
        self._window = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> list[float]:
        cutoff = self._clock() - self._window
        recent = [t for t in self._failures.get(key, []) if t > cutoff]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def blocked(self, user: str, address: str) -> bool:
        with self._lock:
            return len(self._recent((user, address))) >= self._max

    def failed(self, user: str, address: str) -> int:
        """Record a failure; returns the failures now in the window."""
        with self._lock:
            recent = self._recent((user, address))
            recent.append(self._clock())
            self._failures[(user, address)] = recent
            return len(recent)

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._failures.pop((user, address), None)
