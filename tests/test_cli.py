"""The ``signalhub`` command line: every command explains itself, and errors read ``Error: ...``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from signalhub.cli import _LAZY_COMMANDS, cli, current_settings, fail
from signalhub.config import Settings, load_settings
from signalhub.errors import ConfigError


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below ``group``, groups included (``("connector", "run")``, ...)."""
    paths: list[tuple[str, ...]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
    return paths


COMMANDS = _command_paths(cli)


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


def _signalhub(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signalhub", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_top_level_help_says_what_signalhub_does_and_lists_every_command() -> None:
    result = _signalhub("--help")

    assert result.returncode == 0, result.stderr
    assert "share public-safety signals" in result.stdout
    for name in cli.list_commands(click.Context(cli)):
        assert f"  {name} " in result.stdout, name
    for expected in ("demo", "up", "enforcer", "connector", "schemas", "subscribe"):
        assert expected in cli.list_commands(click.Context(cli))


def test_the_issue_2_commands_are_there() -> None:
    for path in [("demo",), ("up",), ("enforcer",), ("connector", "run"), ("schemas", "check")]:
        assert path in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_help_that_says_what_it_does(path: tuple[str, ...]) -> None:
    command = _command(path)
    summary = command.get_short_help_str(limit=200)

    result = CliRunner().invoke(cli, [*path, "--help"])

    assert result.exit_code == 0, result.output
    assert f"Usage: cli {' '.join(path)}" in result.output
    assert len(summary.split()) >= 3, f"{' '.join(path)} has no real description"
    assert command.help is not None
    assert command.help.split("\n")[0].strip()[:40] in " ".join(result.output.split())


def test_the_console_script_runs_a_subcommand_help() -> None:
    result = _signalhub("demo", "--help")
    assert result.returncode == 0, result.stderr
    assert "--input" in result.stdout
    assert "--out" in result.stdout


def test_an_invalid_setting_prints_an_error_line_and_exits_non_zero() -> None:
    result = _signalhub("schemas", "list", SIGNALHUB_PARTITIONS="0")

    assert result.returncode == 1
    assert result.stderr.startswith("Error: invalid configuration")
    assert "SIGNALHUB_PARTITIONS" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failing_command_prints_an_error_line_and_exits_non_zero(tmp_path: Path) -> None:
    result = _signalhub(
        "connector", "run", "no-such-agency", "--source", str(tmp_path / "x.csv"), "--dry-run"
    )

    assert result.returncode != 0
    assert result.stderr.startswith("Error: no connector named 'no-such-agency'")
    assert "Traceback" not in result.stderr


def test_an_unknown_command_is_a_usage_error() -> None:
    result = _signalhub("frobnicate")
    assert result.returncode == 2
    assert "Error: No such command 'frobnicate'" in result.stderr


def test_a_worker_command_loads_no_other_command_group() -> None:
    """``signalhub enforcer`` runs in every worker: the console, the audit store and the other
    packages' commands stay out (its own, the roles in ``signalhub.apps.cli``, is loaded)."""
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from signalhub.cli import cli\n"
        "result = CliRunner().invoke(cli, ['enforcer', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "groups = ('signalhub.console', 'signalhub.audit', 'signalhub.policy.cli')\n"
        "clis = {m for m in sys.modules if m.count('.') == 2 and m.endswith('.cli')}\n"
        "loaded = {m for m in sys.modules if m.startswith(groups)}\n"
        "loaded |= clis - {'signalhub.apps.cli'}\n"
        "print(','.join(sorted(loaded)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_every_command_lives_in_the_cli_module_of_its_package() -> None:
    """The root holds no command of its own: each is mapped to ``signalhub.<package>.cli``."""
    for name in cli.list_commands(click.Context(cli)):
        module = _LAZY_COMMANDS[name].partition(":")[0]
        assert module.split(".")[::2] == ["signalhub", "cli"], name
        callback = _command((name,)).callback
        assert callback is not None
        assert callback.__module__ == module, name


def _probe() -> click.Command:
    @click.command()
    def probe() -> None:
        first, second = current_settings(), current_settings()
        click.echo(f"{first.partitions} {first is second}")

    return probe


def test_a_command_run_on_its_own_reads_the_settings_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNALHUB_PARTITIONS", "5")
    result = CliRunner().invoke(_probe())
    assert result.exit_code == 0, result.output
    assert result.output == "5 True\n"


def test_a_command_uses_the_settings_it_is_given() -> None:
    given: Settings = load_settings(partitions=7)
    result = CliRunner().invoke(_probe(), obj=given)
    assert result.output == "7 True\n"


def test_fail_prints_the_error_line_and_exits_1() -> None:
    @click.command()
    def failing() -> None:
        fail(ConfigError("no key file — run `signalhub keys init`"))

    result = CliRunner().invoke(failing)
    assert result.exit_code == 1
    assert result.output == "Error: no key file — run `signalhub keys init`\n"
