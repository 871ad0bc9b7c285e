"""Console users, passwords, sessions, CSRF and login throttling, without a broker."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from signalhub.console.audit_log import ConsoleAuditLog
from signalhub.console.auth import (
    LoginThrottle,
    SessionSigner,
    User,
    UserStore,
    allowed,
    hash_password,
    verify_password,
)
from signalhub.errors import ConfigError


def test_passwords_are_scrypt_hashed_salted_and_verified() -> None:
    first, second = hash_password("a long password"), hash_password("a long password")
    assert first.startswith("scrypt$16384$8$1$")
    assert first != second  # salted
    assert verify_password("a long password", first)
    assert not verify_password("a long passworD", first)
    assert not verify_password("x", "not-a-hash")


def test_the_users_file_is_owner_only_and_holds_no_password(tmp_path: Path) -> None:
    store = UserStore.in_state_dir(tmp_path)
    store.add("olga", "operator", "correct horse battery")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert "correct horse" not in store.path.read_text()
    assert store.authenticate("olga", "correct horse battery") == store.get("olga")
    assert store.authenticate("olga", "wrong horse battery") is None
    assert store.authenticate("nobody", "correct horse battery") is None
    assert [u.name for u in store.list()] == ["olga"]


@pytest.mark.parametrize(
    ("name", "role", "password"),
    [
        ("Olga", "operator", "long enough pw"),
        ("olga", "admin", "long enough pw"),
        ("olga", "operator", "short"),
    ],
    ids=["uppercase-name", "unknown-role", "short-password"],
)
def test_bad_users_are_refused(tmp_path: Path, name: str, role: str, password: str) -> None:
    with pytest.raises(ConfigError):
        UserStore.in_state_dir(tmp_path).add(name, role, password)


def test_sessions_are_signed_and_expire(tmp_path: Path) -> None:
    now = [1000.0]
    signer = SessionSigner(b"k" * 32, ttl_s=60, clock=lambda: now[0])
    cookie, session = signer.issue(User("sam", "security_officer", ""))
    assert signer.read(cookie) == session
    payload, signature = cookie.rsplit(".", 1)
    forged = json.dumps({"u": "sam", "r": "operator", "exp": 9999, "csrf": "x"})
    assert signer.read(f"{payload}x.{signature}") is None
    assert signer.read(forged + "." + signature) is None
    assert SessionSigner(b"j" * 32, ttl_s=60, clock=lambda: now[0]).read(cookie) is None
    now[0] += 61
    assert signer.read(cookie) is None


def test_the_session_key_is_created_once_owner_only(tmp_path: Path) -> None:
    first = SessionSigner.in_state_dir(tmp_path, ttl_s=60)
    cookie, _ = first.issue(User("sam", "security_officer", ""))
    assert SessionSigner.in_state_dir(tmp_path, ttl_s=60).read(cookie) is not None
    key = tmp_path / "console" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_failed_logins_are_limited_per_user_and_address_within_the_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert not throttle.blocked("olga", "1.2.3.4")
        throttle.failed("olga", "1.2.3.4")
    assert throttle.blocked("olga", "1.2.3.4")
    assert not throttle.blocked("olga", "5.6.7.8")
    assert not throttle.blocked("sam", "1.2.3.4")
    now[0] += 61
    assert not throttle.blocked("olga", "1.2.3.4")


@pytest.mark.parametrize(
    ("role", "permission", "expected"),
    [
        ("operator", "view_operations", True),
        ("operator", "replay_dlq", True),
        ("operator", "change_policy", False),
        ("operator", "view_policy", False),
        ("operator", "read_audit", False),
        ("security_officer", "change_policy", True),
        ("security_officer", "read_audit", True),
        ("security_officer", "replay_dlq", False),
        ("auditor", "read_audit", True),
        ("auditor", "view_operations", False),
        ("auditor", "change_policy", False),
    ],
)
def test_roles_grant_exactly_their_permissions(role: str, permission: str, expected: bool) -> None:
    assert allowed(role, permission) is expected


def test_the_console_audit_log_is_hash_chained(tmp_path: Path) -> None:
    log = ConsoleAuditLog(tmp_path / "audit.jsonl")
    log.append("login_failed", user="mallory", address="127.0.0.1")
    log.append("login", user="olga")
    log.append("policy_publish", user="sam", version="sha256:x")
    assert log.verify() == []
    assert [e["event"] for e in log.entries()] == ["login_failed", "login", "policy_publish"]
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert log.verify() == [2]


# Written by the console before its log was kept on the ledger; each ``prev`` is that code's
# SHA-256 of the line before.
_OLD_CONSOLE_LOG = (
    '{"address": "127.0.0.1", "at": "2026-12-03T09:58:59.162+00:00", "event": "login_failed", '
    '"failures": 1, "prev": "0000000000000000000000000000000000000000000000000000000000000000", '
    '"user": "mallory"}\n'
    '{"address": "127.0.0.1", "at": "2026-12-03T09:58:59.163+00:00", "event": "login", '
    '"prev": "abaeff82049bc5a5c980b23707959b2c73dfb6625a12e4c1543364ef8d66b8c9", '
    '"role": "security_officer", "user": "zoë"}\n'
    '{"at": "2026-12-03T09:58:59.163+00:00", "event": "policy_publish", '
    '"prev": "ad0319f2b18b08b42d358f237ab47addb193709a06f3315575efbffadf99f2ac", "user": "zoë", '
    '"version": "sha256:0123456789abcdef"}\n'
)


def test_a_console_log_written_before_the_ledger_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(_OLD_CONSOLE_LOG.encode("utf-8"))
    log = ConsoleAuditLog(path)
    assert log.verify() == []
    log.append("logout", user="zoë")
    assert log.verify() == []
    assert [e["event"] for e in log.entries()] == [
        "login_failed",
        "login",
        "policy_publish",
        "logout",
    ]
    assert path.read_bytes().startswith(_OLD_CONSOLE_LOG.encode("utf-8"))


def test_a_console_log_locates_an_edited_and_an_extra_line(tmp_path: Path) -> None:
    log = ConsoleAuditLog(tmp_path / "audit.jsonl")
    for user in ("ann", "bob", "cas", "dee"):
        log.append("login", user=user)
    lines = log.path.read_bytes().split(b"\n")[:-1]
    edited = [lines[0], lines[1].replace(b"bob", b"eve"), lines[2], lines[3]]
    log.path.write_bytes(b"\n".join(edited) + b"\n")
    assert log.verify() == [3]  # the line after the edit no longer finds the hash it recorded
    extra = [lines[0], lines[1], lines[1], lines[2], lines[3]]
    log.path.write_bytes(b"\n".join(extra) + b"\n")
    assert log.verify() == [3]


def test_a_line_separator_in_a_user_name_does_not_break_the_console_log(tmp_path: Path) -> None:
    log = ConsoleAuditLog(tmp_path / "audit.jsonl")
    log.append("login_failed", user="mallory\u2028\x85", address="127.0.0.1")
    log.append("login", user="olga")
    assert log.verify() == []
    assert [e["user"] for e in log.entries()] == ["mallory\u2028\x85", "olga"]
