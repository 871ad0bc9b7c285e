"""First run: the commands that need the hub's Kafka find a running ``signalhub up``, or say so.

Each command runs as a user runs it, a ``python -m signalhub`` subprocess, from a working
directory other than the state directory's parent. Without a hub it exits 1 with one
``Error:`` line (no traceback, no broker of its own); with a Kafka address that answers
nothing it does the same within 10 s; against a running ``up`` the connector's signals reach
the hub (its subscriber sees deliveries, ``policy diff`` replays them).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from process_support import environment_without_settings, run_signalhub
from signalhub.broker.connect import ADVERTISED_BROKER_FILE, connect
from signalhub.broker.embedded import EmbeddedBroker, free_port
from signalhub.broker.probe import check_reachable
from signalhub.config import load_settings
from signalhub.errors import BrokerError
from up_support import RunningHub

SETTINGS = load_settings()

#: Every command that reads or writes the hub's data, as a user types it.
HUB_COMMANDS = {
    "connector run": ["connector", "run", "gemeente"],
    "subscribe": ["subscribe", "gemeente", "--idle-ms", "600"],
    "policy diff": ["policy", "diff", "--candidate", str(SETTINGS.policies_dir)],
    "audit ingest": ["audit", "ingest"],
    "audit reconcile": ["audit", "reconcile"],
}
#: The most a command may take to give up on a Kafka that does not answer (the issue's bound).
WRONG_KAFKA_BOUND_S = 10.0


def _env(state_dir: Path, **extra: str) -> dict[str, str]:
    return environment_without_settings() | {
        "SIGNALHUB_HOME": str(SETTINGS.home),
        "SIGNALHUB_STATE_DIR": str(state_dir),
        **extra,
    }


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit 1 and exactly one ``Error:`` line on stderr; that line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines
    return lines[0]


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the state directory's parent."""
    path = tmp_path / "somewhere" / "else"
    path.mkdir(parents=True)
    return path


# -- the state directory does not depend on the working directory ---------------------------


def test_the_default_state_dir_is_under_home_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIGNALHUB_STATE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(home=SETTINGS.home)
    assert settings.state_dir == SETTINGS.home / ".signalhub"
    assert load_settings(home=tmp_path / "hub").state_dir == tmp_path / "hub" / ".signalhub"
    assert load_settings(state_dir=Path("given")).state_dir == Path("given")  # as configured


# -- no hub: one line, exit 1, at once -------------------------------------------------------


@pytest.mark.parametrize("command", HUB_COMMANDS)
def test_without_a_hub_the_command_says_so_in_one_line(
    command: str, tmp_path: Path, elsewhere: Path
) -> None:
    state = tmp_path / "state"
    result, took = run_signalhub(
        HUB_COMMANDS[command], _env(state, SIGNALHUB_BOOTSTRAP_SERVERS=""), elsewhere
    )
    line = _one_error_line(result)
    assert "no running hub found" in line
    assert str(state / ADVERTISED_BROKER_FILE) in line
    assert "signalhub up" in line
    assert "SIGNALHUB_BOOTSTRAP_SERVERS" in line
    assert result.stdout == ""  # nothing published, nothing read
    assert took < 8.0, f"{command} took {took:.1f} s to find no hub"


def test_a_stale_advertisement_is_named_after_a_short_grace(tmp_path: Path) -> None:
    """An ``up`` killed with -9 leaves its advertisement: the command says what it found."""
    state = tmp_path / "state"
    state.mkdir()
    dead = f"127.0.0.1:{free_port()}"
    (state / ADVERTISED_BROKER_FILE).write_text(dead + "\n")
    result, took = run_signalhub(
        HUB_COMMANDS["connector run"], _env(state, SIGNALHUB_BOOTSTRAP_SERVERS=""), tmp_path
    )
    line = _one_error_line(result)
    assert f"names the broker {dead}, which does not answer" in line
    assert took < WRONG_KAFKA_BOUND_S


# -- a Kafka address that answers nothing: one line within 10 s -------------------------------


@pytest.mark.parametrize("command", HUB_COMMANDS)
def test_a_wrong_bootstrap_setting_fails_within_ten_seconds(
    command: str, tmp_path: Path, elsewhere: Path
) -> None:
    nothing = f"127.0.0.1:{free_port()}"
    env = _env(tmp_path / "state", SIGNALHUB_BOOTSTRAP_SERVERS=nothing)
    result, took = run_signalhub(HUB_COMMANDS[command], env, elsewhere)
    line = _one_error_line(result)
    assert f"cannot reach Kafka at {nothing}" in line
    assert took < WRONG_KAFKA_BOUND_S, f"{command} took {took:.1f} s"
    print(f"{command}: gave up on {nothing} after {took:.1f} s")


@pytest.mark.parametrize(
    "nothing",
    ["no-such-host.invalid:9092", "10.255.255.1:9092"],
    ids=["unresolvable", "unroutable"],
)
def test_a_wrong_bootstrap_option_fails_within_ten_seconds(
    nothing: str, tmp_path: Path, elsewhere: Path
) -> None:
    args = [*HUB_COMMANDS["connector run"], "--bootstrap-servers", nothing]
    result, took = run_signalhub(args, _env(tmp_path / "state"), elsewhere)
    line = _one_error_line(result)
    assert f"cannot reach Kafka at {nothing}" in line
    assert took < WRONG_KAFKA_BOUND_S, f"took {took:.1f} s"


# -- connect(require_hub=True), the one way the commands above find Kafka ----------------------


def test_require_hub_never_starts_a_broker(tmp_path: Path) -> None:
    settings = load_settings(bootstrap_servers="", state_dir=tmp_path)
    with (
        pytest.raises(BrokerError, match="no running hub found"),
        connect(settings, require_hub=True),
    ):
        pytest.fail("connect yielded without a hub")
    with pytest.raises(TypeError), connect(settings, require_hub=True, own=True):
        pytest.fail("own and require_hub together")


@pytest.mark.integration
def test_require_hub_yields_the_advertised_or_configured_broker(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    (tmp_path / ADVERTISED_BROKER_FILE).write_text(broker.bootstrap_servers + "\n")
    embedded = load_settings(bootstrap_servers="", state_dir=tmp_path)
    with connect(embedded, require_hub=True) as joined:
        assert joined == broker.bootstrap_servers
    external = load_settings(bootstrap_servers=broker.bootstrap_servers, state_dir=tmp_path)
    with connect(external, require_hub=True) as configured:
        assert configured == broker.bootstrap_servers
    check_reachable(broker.bootstrap_servers)  # answers: no error


def test_check_reachable_gives_up_within_its_bound() -> None:
    nothing = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BrokerError, match=f"cannot reach Kafka at {nothing}"):
        check_reachable(nothing, timeout_s=1.0)
    assert time.monotonic() - started < 3.0


# -- against a running `signalhub up` -------------------------------------------------------


@pytest.fixture(scope="module")
def running_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    state = tmp_path_factory.mktemp("first-run") / "state"
    with RunningHub(state, SIGNALHUB_BROKER_STORAGE="memory") as hub:
        hub.wait_ready()
        yield hub


@pytest.mark.integration
def test_connector_run_publishes_into_the_running_hub(
    running_hub: RunningHub, elsewhere: Path
) -> None:
    env = _env(running_hub.state_dir)
    published, _ = run_signalhub(HUB_COMMANDS["connector run"], env, elsewhere)
    assert published.returncode == 0, published.stderr
    assert "gemeente: read 46, published 40, rejected 6" in published.stdout

    # The hub's enforcer decides them and delivers to its subscribers: read as a subscriber does.
    deadline = time.monotonic() + 90.0
    deliveries: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not deliveries:
        read, _ = run_signalhub(
            [*HUB_COMMANDS["subscribe"], "--json"], env, elsewhere, timeout_s=60.0
        )
        assert read.returncode == 0, read.stderr
        deliveries = [json.loads(line) for line in read.stdout.splitlines()]
    assert deliveries, f"no delivery to gemeente within 90 s:\n{running_hub.output}"
    assert all(d["topic"] == "deliveries.gemeente" for d in deliveries)
    # This hub's broker holds only what the connector published: every delivery came from it.
    assert {d["record"]["envelope"]["source_agency"] for d in deliveries} == {"gemeente"}

    replay, _ = run_signalhub(HUB_COMMANDS["policy diff"], env, elsewhere)
    assert replay.returncode == 0, replay.stderr
    replayed = int(replay.stdout.split("replayed ")[1].split(" signals")[0])
    assert replayed >= 40, replay.stdout
