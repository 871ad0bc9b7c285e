"""``signalhub console user add|list`` and ``signalhub status`` through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from signalhub.cli import cli
from signalhub.console.auth import UserStore


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SIGNALHUB_STATE_DIR", str(tmp_path))
    return CliRunner()


def test_user_add_hashes_the_prompted_password_and_list_shows_the_role(
    run: CliRunner, tmp_path: Path
) -> None:
    added = run.invoke(
        cli,
        ["console", "user", "add", "sam", "--role", "security_officer"],
        input="a good long password\na good long password\n",
    )
    assert added.exit_code == 0, added.output
    assert "a good long password" not in (tmp_path / "console" / "users.json").read_text()
    assert UserStore.in_state_dir(tmp_path).authenticate("sam", "a good long password")
    listed = run.invoke(cli, ["console", "user", "list"])
    assert "sam" in listed.output
    assert "security_officer" in listed.output


def test_user_add_refuses_an_unknown_role(run: CliRunner) -> None:
    result = run.invoke(
        cli, ["console", "user", "add", "x1", "--role", "admin", "--password", "long enough pw"]
    )
    assert result.exit_code != 0
    assert "admin" in result.output


def test_status_without_a_running_hub_says_not_ready_and_exits_non_zero(run: CliRunner) -> None:
    result = run.invoke(cli, ["status", "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "NOT READY" in result.output
    assert "enforcer" in result.output
    assert "checked locally" in result.output
