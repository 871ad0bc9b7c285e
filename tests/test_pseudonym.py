"""Pseudonyms (keyed, per domain, versioned) and the master-key providers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from signalhub.config import Settings
from signalhub.errors import KeyProviderError
from signalhub.pseudonym.keys import default_key_file, ensure_dev_key, load_master_key
from signalhub.pseudonym.pseudonyms import Pseudonymiser, normalise, pseudonym_key_version

KEY = bytes(range(32))
KEY_HEX = KEY.hex()
DOMAINS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
KINDS = st.sampled_from(["bsn", "name", "address", "postcode", "birth_date", "phone"])
SettingsFactory = Callable[..., Settings]
VALUES = st.text(min_size=8, max_size=60).filter(lambda v: len(normalise("name", v)) >= 8)


@pytest.fixture
def settings_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SettingsFactory:
    for name in ("SIGNALHUB_MASTER_KEY", "SIGNALHUB_KEY_FILE", "SIGNALHUB_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    def make(**values: object) -> Settings:
        return Settings(state_dir=tmp_path / "state", **values)  # type: ignore[arg-type]

    return make


def write_key(path: Path, content: str, mode: int = 0o600) -> Path:
    path.write_text(content)
    path.chmod(mode)
    return path


# --- pseudonyms ---


def test_pseudonym_matches_the_documented_construction() -> None:
    domain_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"signalhub/pseudonym/zvh-casework/k1"
    ).derive(KEY)
    digest = hmac.new(domain_key, b"bsn\x00123456782", hashlib.sha256).digest()[:20]
    expected = "pn1.k1." + base64.b32encode(digest).decode().lower()
    assert Pseudonymiser(KEY).pseudonym("zvh-casework", "bsn", "123456782") == expected
    assert expected == "pn1.k1.m3435atolqzdsjmp7tgu2csnbseaiu7r"  # pinned: a change breaks links


def test_a_domain_id_is_the_uuid_of_the_hashed_pseudonym() -> None:
    pseudonymiser = Pseudonymiser(KEY)
    signal_id = "5b1f6a0e-8c1d-4b7e-9a51-0d5e1f0c9a11"
    made = pseudonymiser.domain_id("zvh-casework", "signal_id", signal_id)
    keyed = pseudonymiser.pseudonym("zvh-casework", "signal_id", signal_id)
    assert made == str(uuid.UUID(bytes=hashlib.sha256(keyed.encode()).digest()[:16], version=4))
    assert made == "22b1727d-b3a6-4b3a-bbb8-6d6edb8cf7b8"  # pinned: ids are stored downstream
    assert pseudonymiser.domain_id("zvh-casework", "bundle_id", signal_id) != made
    assert pseudonymiser.domain_id("politie", "signal_id", signal_id) != made


@given(domain=DOMAINS, kind=KINDS, value=VALUES)
def test_deterministic_within_a_domain(domain: str, kind: str, value: str) -> None:
    first = Pseudonymiser(KEY).pseudonym(domain, kind, value)
    assert Pseudonymiser(KEY).pseudonym(domain, kind, value) == first


@given(a=DOMAINS, b=DOMAINS, kind=KINDS, value=VALUES)
def test_unlinkable_across_domains(a: str, b: str, kind: str, value: str) -> None:
    pseudonymiser = Pseudonymiser(KEY)
    same = pseudonymiser.pseudonym(a, kind, value) == pseudonymiser.pseudonym(b, kind, value)
    assert same == (a == b)


@given(domain=DOMAINS, kind=KINDS, value=VALUES)
def test_never_contains_the_value(domain: str, kind: str, value: str) -> None:
    pseudonym = Pseudonymiser(KEY).pseudonym(domain, kind, value)
    assert value not in pseudonym
    assert normalise(kind, value) not in pseudonym


@given(version=st.integers(1, 10_000), domain=DOMAINS, value=VALUES)
def test_key_version_round_trips(version: int, domain: str, value: str) -> None:
    pseudonym = Pseudonymiser(KEY, key_version=version).pseudonym(domain, "bsn", value)
    assert pseudonym.startswith(f"pn1.k{version}.")
    assert pseudonym_key_version(pseudonym) == version


def test_key_versions_and_master_keys_give_different_pseudonyms() -> None:
    base = Pseudonymiser(KEY).pseudonym("om", "name", "Jan Janssen")
    assert Pseudonymiser(KEY, key_version=2).pseudonym("om", "name", "Jan Janssen") != base
    assert Pseudonymiser(bytes(32)).pseudonym("om", "name", "Jan Janssen") != base


def test_kind_separates_equal_strings() -> None:
    pseudonymiser = Pseudonymiser(KEY)
    assert pseudonymiser.pseudonym("om", "name", "6211AB") != pseudonymiser.pseudonym(
        "om", "postcode", "6211AB"
    )


@pytest.mark.parametrize(
    ("kind", "a", "b"),
    [
        ("bsn", "123456782", " 1234.56.782 "),
        ("bsn", "012345672", "12345672"),
        ("postcode", "6211 AB", "6211ab"),
        ("postcode", "6211-AB", "6211AB"),
        ("name", "Jan  Janssen ", "jan janssen"),
        ("address", "Boschstraat 12", "BOSCHSTRAAT 12"),
        ("name", "Jose\u0301", "Jos\u00e9"),
    ],
    ids=[
        "bsn-dots",
        "bsn-leading-zero",
        "postcode-space",
        "postcode-hyphen",
        "name-spaces",
        "address-case",
        "name-unicode",
    ],
)
def test_normalisation_links_spelling_variants(kind: str, a: str, b: str) -> None:
    pseudonymiser = Pseudonymiser(KEY)
    assert pseudonymiser.pseudonym("zvh", kind, a) == pseudonymiser.pseudonym("zvh", kind, b)


def test_names_keep_meaningful_punctuation() -> None:
    pseudonymiser = Pseudonymiser(KEY)
    assert pseudonymiser.pseudonym("zvh", "name", "Anne-Marie") != pseudonymiser.pseudonym(
        "zvh", "name", "Annemarie"
    )


@pytest.mark.parametrize("domain", ["", "Zvh", "../x", "a b", "x" * 64])
def test_invalid_domain_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        Pseudonymiser(KEY).pseudonym(domain, "bsn", "123456782")


@pytest.mark.parametrize("bad", ["pn1.k0.aaaa", "pn2.k1." + "a" * 32, "123456782", "pn1.k1.x"])
def test_foreign_strings_have_no_key_version(bad: str) -> None:
    with pytest.raises(ValueError, match="not a signalhub pseudonym"):
        pseudonym_key_version(bad)


def test_short_master_key_refused() -> None:
    with pytest.raises(KeyProviderError, match="at least 32 bytes"):
        Pseudonymiser(b"x" * 31)


def test_repr_hides_key() -> None:
    assert KEY_HEX not in repr(Pseudonymiser(KEY))
    assert repr(Pseudonymiser(KEY, 3)) == "Pseudonymiser(key_version=3)"


# --- master key sources ---


def test_env_key_hex_and_base64(settings_factory: SettingsFactory) -> None:
    assert load_master_key(settings_factory(master_key=KEY_HEX)) == (KEY, 1)
    b64 = base64.b64encode(KEY).decode()
    assert load_master_key(settings_factory(master_key=f"4:{b64}")) == (KEY, 4)


def test_env_key_wins_over_key_file(settings_factory: SettingsFactory, tmp_path: Path) -> None:
    other = write_key(tmp_path / "k", bytes(32).hex())
    assert load_master_key(settings_factory(master_key=KEY_HEX, key_file=other)) == (KEY, 1)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("abcd", "at least 32"),
        ("not a key!", "neither hex nor base64"),
        ("x:" + KEY_HEX, "[<version>:]"),
    ],
    ids=["short", "garbage", "bad-version"],
)
def test_bad_env_key_refused_without_echoing_it(
    settings_factory: SettingsFactory, value: str, problem: str
) -> None:
    with pytest.raises(KeyProviderError) as caught:
        load_master_key(settings_factory(master_key=value))
    assert problem in str(caught.value)
    assert value not in str(caught.value)


def test_key_file_with_version_and_comments(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    path = write_key(tmp_path / "pseudonym.key", f"# rotated 2026-11\nversion = 3\n{KEY_HEX}\n")
    assert load_master_key(settings_factory(key_file=path)) == (KEY, 3)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_file_readable_by_others_refused(
    settings_factory: SettingsFactory, tmp_path: Path, mode: int
) -> None:
    path = write_key(tmp_path / "pseudonym.key", KEY_HEX, mode)
    with pytest.raises(KeyProviderError, match="chmod 600") as caught:
        load_master_key(settings_factory(key_file=path))
    assert KEY_HEX not in str(caught.value)


def test_key_file_owner_read_only_accepted(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    path = write_key(tmp_path / "pseudonym.key", KEY_HEX, 0o400)
    assert load_master_key(settings_factory(key_file=path)) == (KEY, 1)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "exactly one key line (found 0)"),
        (f"{KEY_HEX}\n{KEY_HEX}\n", "exactly one key line (found 2)"),
        (f"version = two\n{KEY_HEX}\n", "version must be a positive integer"),
        (f"version = 0\n{KEY_HEX}\n", "version must be a positive integer"),
        ("00ff\n", "at least 32"),
    ],
    ids=["empty", "two-keys", "version-word", "version-zero", "short"],
)
def test_bad_key_file_refused(
    settings_factory: SettingsFactory, tmp_path: Path, content: str, problem: str
) -> None:
    path = write_key(tmp_path / "pseudonym.key", content)
    with pytest.raises(KeyProviderError) as caught:
        load_master_key(settings_factory(key_file=path))
    assert problem in str(caught.value)
    assert KEY_HEX not in str(caught.value)


def test_missing_key_tells_operator_what_to_set(settings_factory: SettingsFactory) -> None:
    with pytest.raises(KeyProviderError, match="SIGNALHUB_MASTER_KEY"):
        load_master_key(settings_factory())


def test_dev_key_created_owner_only_and_loadable(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    path = default_key_file(settings)
    ensure_dev_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key, version = load_master_key(settings)
    assert len(key) == 32
    assert version == 1
    ensure_dev_key(path)  # idempotent: never replaces an existing key
    assert load_master_key(settings) == (key, version)


def test_dev_key_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ensure_dev_key(tmp_path / "k" / "pseudonym.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k" / "pseudonym.key").stat().st_mode) == 0o600


def test_dev_keys_are_random(tmp_path: Path) -> None:
    ensure_dev_key(tmp_path / "a")
    ensure_dev_key(tmp_path / "b")
    assert (tmp_path / "a").read_text() != (tmp_path / "b").read_text()
