"""Keyed pseudonyms per subscriber domain, and where the master key comes from.

A pseudonym is ``pn1.k<key version>.<32 base32 chars>``: HMAC-SHA256 over the pii kind and the
normalised value, with a key derived by HKDF-SHA256 from the master key, the pseudonym domain and
the key version, truncated to 20 bytes. Within one domain the same person always gets the same
pseudonym, so a subscriber can link its signals; across domains the pseudonyms are unlinkable
without the master key. The key version in the pseudonym says which key made it, so keys can be
rotated and old pseudonyms recognised. Re-identification is not done here: it is a separate,
audited act. The ids the hub makes itself (a signal id, a bundle id) reach each domain as a
UUID-shaped id derived from such a pseudonym (:meth:`Pseudonymiser.domain_id`).

This module is handed a key and never reads the settings: where the master keys come from (a
versioned key ring, its providers, the settings that pick one) and how pseudonyms carry over a
rotation is :mod:`signalhub.pseudonym.keys`.

Neither a key nor a value to pseudonymise ever appears in a message or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from signalhub.errors import KeyProviderError

__all__ = ["MIN_KEY_BYTES", "Pseudonymiser", "normalise", "pseudonym_key_version"]

#: A master key shorter than this is refused (256 bits).
MIN_KEY_BYTES = 32

_SCHEME = "pn1"
_DIGEST_BYTES = 20
_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PSEUDONYM = re.compile(r"^pn1\.k([1-9][0-9]*)\.([a-z2-7]{32})$")
_COMPACT_KINDS = frozenset({"bsn", "postcode"})
_COMPACT = re.compile(r"[\s.\-]+")
_SPACES = re.compile(r"\s+")
#: Pseudonyms one :class:`Pseudonymiser` keeps in memory; the cache is emptied when full.
_REMEMBER = 65_536


def normalise(kind: str, value: str) -> str:
    """The form of a value that is pseudonymised, so trivial spelling differences still link.

    Unicode NFC, whitespace stripped and collapsed, case-folded; for ``bsn`` and ``postcode``
    spaces, dots and hyphens are removed, and an 8-digit BSN gets back its lost leading zero.
    """
    text = unicodedata.normalize("NFC", value).strip().casefold()
    if kind in _COMPACT_KINDS:
        text = _COMPACT.sub("", text)
        if kind == "bsn" and len(text) == 8 and text.isdigit():
            text = "0" + text
        return text
    return _SPACES.sub(" ", text)


class Pseudonymiser:
    """Makes pseudonyms with one master key version; domain keys and recent pseudonyms are cached.

    A pseudonym depends only on the key, the domain, the kind and the value, so the cache of
    pseudonyms made is exact; it belongs to this instance, hence to this one key version.
    """

    def __init__(self, master_key: bytes, key_version: int = 1) -> None:
        if len(master_key) < MIN_KEY_BYTES:
            raise KeyProviderError(
                f"master key too short: need at least {MIN_KEY_BYTES} bytes — "
                "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        if key_version < 1:
            raise KeyProviderError("key version must be a positive integer")
        self._master = bytes(master_key)
        self.key_version = key_version
        self._prefix = f"{_SCHEME}.k{key_version}."
        self._domain_macs: dict[str, hmac.HMAC] = {}
        self._made: dict[tuple[str, str, str], str] = {}

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymiser(key_version={self.key_version})"

    def pseudonym(self, domain: str, kind: str, value: str) -> str:
        """The pseudonym of ``value`` (a pii ``kind`` such as ``"bsn"``) in ``domain``."""
        cache_key = (domain, kind, value)
        made = self._made.get(cache_key)
        if made is None:
            # Copying a keyed HMAC skips hashing the key pads again, which hmac.new does per call.
            mac = self._domain_mac(domain).copy()
            mac.update(kind.encode() + b"\0" + normalise(kind, value).encode("utf-8"))
            body = base64.b32encode(mac.digest()[:_DIGEST_BYTES]).decode("ascii").lower()
            made = self._prefix + body
            if len(self._made) >= _REMEMBER:
                self._made.clear()
            self._made[cache_key] = made
        return made

    def domain_id(self, domain: str, kind: str, value: str) -> str:
        """The id the hub made (``kind``: ``signal_id``, ``bundle_id``) as ``domain`` receives it.

        UUID-shaped, so it fits where the hub's own id did; keyed, so the same id always gives
        the same value in one domain (a subscriber can de-duplicate and follow it) and values of
        other domains cannot be linked to it. The hash of the pseudonym, not the pseudonym itself:
        ids stored downstream were derived so and must never change.
        """
        keyed = self.pseudonym(domain, kind, value)
        return str(uuid.UUID(bytes=hashlib.sha256(keyed.encode()).digest()[:16], version=4))

    def _domain_mac(self, domain: str) -> hmac.HMAC:
        """An HMAC-SHA256 keyed with the domain key, fed nothing: copy it, never update it."""
        mac = self._domain_macs.get(domain)
        if mac is None:
            if not _DOMAIN.match(domain):
                raise ValueError("pseudonym domain must match [a-z0-9][a-z0-9_-]{0,62}")
            info = b"signalhub/pseudonym/" + domain.encode() + b"/k%d" % self.key_version
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
                self._master
            )
            mac = hmac.new(key, digestmod=hashlib.sha256)
            self._domain_macs[domain] = mac
        return mac


def pseudonym_key_version(pseudonym: str) -> int:
    """The master key version that made ``pseudonym``; ValueError if it is not one of ours."""
    match = _PSEUDONYM.match(pseudonym)
    if match is None:
        raise ValueError("not a signalhub pseudonym (expected pn1.k<version>.<32 base32>)")
    return int(match.group(1))
