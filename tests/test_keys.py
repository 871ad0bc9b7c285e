"""The key ring: file formats, providers, rotation, and the ``signalhub keys`` commands."""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from signalhub.config import Settings
from signalhub.errors import KeyProviderError
from signalhub.pseudonym.cli import keys_group
from signalhub.pseudonym.keys import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    KeyRing,
    key_provider,
    load_key_ring,
    load_master_key,
)
from signalhub.pseudonym.pseudonyms import Pseudonymiser

KEY1 = bytes(range(32))
KEY2 = bytes(range(32, 64))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SIGNALHUB_MASTER_KEY", "SIGNALHUB_KEY_FILE", "SIGNALHUB_KEY_PROVIDER",
                 "SIGNALHUB_VAULT_KEY_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNALHUB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def _secret_forms(ring: KeyRing) -> list[str]:
    return [ring.key(v).hex() for v in ring.versions]


def test_ring_round_trips_through_the_key_file(tmp_path: Path) -> None:
    ring = KeyRing(2, {1: KEY1, 2: KEY2}, {1: "2026-01-01T00:00:00+00:00"})
    provider = FileKeyProvider(tmp_path / "k")
    provider.save(ring)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    loaded = provider.load()
    assert (loaded.current, loaded.versions, loaded.key(1), loaded.key(2)) == (
        2,
        (1, 2),
        KEY1,
        KEY2,
    )
    assert loaded.created == {1: "2026-01-01T00:00:00+00:00"}


def test_ring_repr_and_errors_never_show_a_key() -> None:
    ring = KeyRing(1, {1: KEY1})
    assert KEY1.hex() not in repr(ring)
    with pytest.raises(KeyProviderError) as caught:
        ring.key(7)
    assert KEY1.hex() not in str(caught.value)


def test_rotation_adds_a_current_version_and_keeps_the_old() -> None:
    ring = KeyRing(1, {1: KEY1}).rotated()
    assert ring.current == 2
    assert ring.key(1) == KEY1
    assert ring.key(2) != KEY1
    assert len(ring.key(2)) == 32


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "current = 3\nkey.1 = " + KEY1.hex() + "\n",
            "current key version 3 is not in the key ring",
        ),
        ("key.1 = " + KEY1.hex() + "\nkey.1 = " + KEY2.hex() + "\n", "appears twice"),
        ("current = 1\nkey.1 = 00ff\n", "at least 32"),
        ("current = 1\n" + KEY1.hex() + "\n", "bare key line"),
    ],
    ids=["current-missing", "duplicate", "short", "mixed-formats"],
)
def test_bad_ring_files_refused_without_the_key(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "k"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyProviderError) as caught:
        FileKeyProvider(path).load()
    assert problem in str(caught.value)
    assert KEY1.hex() not in str(caught.value)
    assert KEY2.hex() not in str(caught.value)


def test_ring_file_readable_by_others_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    FileKeyProvider(path).save(KeyRing(1, {1: KEY1}))
    path.chmod(0o644)
    with pytest.raises(KeyProviderError, match="chmod 600"):
        FileKeyProvider(path).load()


def test_env_holds_several_versions_and_the_highest_is_current() -> None:
    ring = EnvKeyProvider(f"1:{KEY1.hex()}, 2:{KEY2.hex()}").load()
    assert (ring.current, ring.key(1), ring.key(2)) == (2, KEY1, KEY2)
    with pytest.raises(KeyProviderError, match="twice"):
        EnvKeyProvider(f"1:{KEY1.hex()},1:{KEY2.hex()}").load()


class _Kms:
    def load(self) -> KeyRing:
        return KeyRing(5, {5: KEY2})


def make_kms(settings: Settings) -> KeyProvider:
    return _Kms()


def test_a_key_provider_plugs_in_by_name(env: Path) -> None:
    settings = Settings(key_provider="test_keys:make_kms", master_key=KEY1.hex())
    assert isinstance(key_provider(settings), _Kms)
    assert load_master_key(settings) == (KEY2, 5)
    with pytest.raises(KeyProviderError, match="cannot import"):
        load_key_ring(Settings(key_provider="no.such.module:factory"))


def test_master_key_comes_from_the_current_version(env: Path) -> None:
    path = env / "pseudonym.key"
    FileKeyProvider(path).save(KeyRing(2, {1: KEY1, 2: KEY2}))
    assert load_master_key(Settings()) == (KEY2, 2)


# --- the CLI ------------------------------------------------------------------------------------


def test_init_rotate_list_never_print_a_key(env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(keys_group, ["init"])
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE((env / "pseudonym.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((env / "vault.key").stat().st_mode) == 0o600
    again = runner.invoke(keys_group, ["init"])
    assert again.exit_code == 1
    assert "already exists" in again.output
    rotated = runner.invoke(keys_group, ["rotate"])
    assert rotated.exit_code == 0
    assert "key version 2 is now current" in rotated.output
    listed = runner.invoke(keys_group, ["list"])
    assert listed.exit_code == 0
    assert "k1" in listed.output
    assert "current" in listed.output.splitlines()[-1]
    ring = FileKeyProvider(env / "pseudonym.key").load()
    vault_key = (env / "vault.key").read_text().splitlines()[1]
    for output in (first.output, again.output, rotated.output, listed.output):
        for secret in [*_secret_forms(ring), vault_key]:
            assert secret not in output


def test_rotate_refuses_keys_from_the_environment(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALHUB_MASTER_KEY", KEY1.hex())
    result = CliRunner().invoke(keys_group, ["rotate"])
    assert result.exit_code == 1
    assert "SIGNALHUB_MASTER_KEY" in result.output
    assert KEY1.hex() not in result.output


def test_export_mapping_is_exact_for_one_domain(env: Path, tmp_path: Path) -> None:
    FileKeyProvider(env / "pseudonym.key").save(KeyRing(2, {1: KEY1, 2: KEY2}))
    bsns = ["111222333", "123456782", "1234.56.782", "", "# a comment"]
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(bsns) + "\n")
    result = CliRunner().invoke(
        keys_group, ["export-mapping", "--domain", "gemeente", "--from", "1", "--to", "2",
                     "--input", str(ids)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0] == ["old_pseudonym", "new_pseudonym"]
    old, new = Pseudonymiser(KEY1, 1), Pseudonymiser(KEY2, 2)
    expected = [[old.pseudonym("gemeente", "bsn", b), new.pseudonym("gemeente", "bsn", b)]
                for b in ("111222333", "123456782")]  # fmt: skip
    assert rows[1:] == expected  # the dotted spelling is the same person: one pair
    assert "111222333" not in result.output


def test_export_mapping_refuses_an_unknown_version(env: Path, tmp_path: Path) -> None:
    FileKeyProvider(env / "pseudonym.key").save(KeyRing(1, {1: KEY1}))
    ids = tmp_path / "ids.txt"
    ids.write_text("111222333\n")
    result = CliRunner().invoke(
        keys_group, ["export-mapping", "--domain", "om", "--from", "3", "--input", str(ids)]
    )
    assert result.exit_code == 1
    assert "key version 3 is not in the key ring" in result.output
