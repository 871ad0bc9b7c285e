"""The hash-chained ledger: how every append-only log of the hub links and verifies its entries.

The audit store, the vault's re-identification trail, the console's log and the hit/no-hit log
each keep one. Each stores its entries its own way (a table, a file) and encodes an entry its
own way: that encoding is the entry's *material*, and it must contain the hash of the entry
before it (:data:`GENESIS` for the first). Everything else is done here, once:

- an entry's hash is sha256 (hex) over its material (:func:`entry_hash`, :func:`link`);
- an entry is *sealed* when its material still gives its stored hash;
- an entry is *linked* when it names the hash of the entry stored before it.

:class:`Chain` walks the entries in stored order and locates every break, with why:

- ``changed``: the entry's material no longer gives its hash (it was edited);
- ``reordered``: it links to another entry of the chain, not to the one stored before it;
- ``inserted``: no entry links to it, and the entry after it links past it;
- ``removed``: it links to a hash no entry has, so entries before it are missing (or the one
  before it was rewritten with its hash recomputed, which looks the same).

Only a hash kept elsewhere (the audit store's recorded head, an operator's anchor) shows that
entries were cut off the end, or that the whole chain after a change was recomputed: a chain is
tamper-evident, not tamper-proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from signalhub.wire import canonical_json

__all__ = [
    "GENESIS",
    "Break",
    "BreakKind",
    "Chain",
    "Entry",
    "canonical_material",
    "entry_hash",
    "first_break",
    "link",
    "verify",
]

#: The previous hash of the very first entry of every chain.
GENESIS = "0" * 64

BreakKind = Literal["changed", "reordered", "inserted", "removed"]


def entry_hash(material: bytes) -> str:
    """The one hash of the ledger: sha256 (hex) over an entry's material."""
    return hashlib.sha256(material).hexdigest()


def canonical_material(value: Any) -> bytes:
    """Material for a log whose entries are JSON: the wire's canonical JSON, as UTF-8."""
    return canonical_json(value).encode("utf-8")


@dataclass(frozen=True)
class Entry:
    """One entry as the ledger sees it: the hash it follows, its hash, the bytes hashed.

    ``material`` is None when the stored entry cannot even be encoded (a body that is no longer
    JSON, say): such an entry cannot match its hash.
    """

    prev_hash: str
    hash: str
    material: bytes | None

    @property
    def sealed(self) -> bool:
        return self.material is not None and entry_hash(self.material) == self.hash


def link(prev_hash: str, material: bytes) -> Entry:
    """A new entry after ``prev_hash``; ``material`` is the log's encoding of it.

    Raises ValueError when the material does not contain ``prev_hash``: its hash would then not
    cover the link, and the chain would not be one.
    """
    if prev_hash.encode("ascii") not in material:
        raise ValueError("an entry's material must contain the hash of the entry before it")
    return Entry(prev_hash, entry_hash(material), material)


@dataclass(frozen=True)
class Break:
    """Where a chain breaks: the entry (position in the stored order) and why."""

    index: int
    kind: BreakKind
    why: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.why}"


def _entry_name(index: int) -> str:
    return f"entry {index + 1}"


class Chain:
    """The stored entries of one log, in stored order, indexed for verification.

    ``anchored`` maps a position to the hash its entry must link to instead of its stored
    predecessor's, because the entries between were removed on purpose (the audit store's
    declared retention); None there means the entries before it are missing and the log
    reports that itself, so that link is not checked. ``name`` names an entry in messages
    (``seq 7``, ``line 3``).
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        start: str = GENESIS,
        *,
        anchored: Mapping[int, str | None] | None = None,
        name: Callable[[int], str] = _entry_name,
    ) -> None:
        self.entries = entries
        self._start = start
        self._anchored = dict(anchored or {})
        self._name = name
        self._by_hash = {entry.hash: index for index, entry in enumerate(entries)}
        self._referenced = {entry.prev_hash for entry in entries}

    def expected(self, index: int) -> str | None:
        """The hash entry ``index`` must link to (None: not checked here)."""
        if index in self._anchored:
            return self._anchored[index]
        return self.entries[index - 1].hash if index > 0 else self._start

    def seal_break(self, index: int) -> Break | None:
        """A break if entry ``index`` no longer matches its own hash."""
        if self.entries[index].sealed:
            return None
        return Break(index, "changed", f"{self._name(index)} does not match its hash")

    def link_break(self, index: int) -> Break | None:
        """A break if entry ``index`` does not link to the entry it must follow.

        The break is located where the evidence points: at an entry before ``index`` when
        that one is the extra, else at ``index`` itself.
        """
        expected = self.expected(index)
        prev_hash = self.entries[index].prev_hash
        if expected is None or prev_hash == expected:
            return None
        if self._skips_inserted(index, prev_hash):
            if self.entries[index - 1].prev_hash != self.expected(index - 1):
                return None  # the extra entry links nowhere: found at its own link already
            before = self._nameof_expected(index - 1)
            why = f"no entry links to it; {self._name(index)} links straight to {before}"
            return Break(index - 1, "inserted", why)
        if prev_hash in self._by_hash:
            after = f"after {self._name(index - 1)}" if index > 0 else "first"
            target = self._name(self._by_hash[prev_hash])
            return Break(index, "reordered", f"stored {after} but links to {target}")
        if self._is_stray(index):
            why = f"no entry links to it; {self._name(index + 1)} links straight past it"
            return Break(index, "inserted", why)
        why = f"{self._name(index)} links to a hash no entry has: entries before it were removed"
        if index > 0:
            why += f", or {self._name(index - 1)} was rewritten with its hash recomputed"
        return Break(index, "removed", why)

    def breaks(self) -> list[Break]:
        """Every break, in stored order: per entry its seal, then its link."""
        found = (
            broken
            for index in range(len(self.entries))
            for broken in (self.seal_break(index), self.link_break(index))
        )
        return [broken for broken in found if broken is not None]

    def first_break(self) -> Break | None:
        """The first break in stored order, or None when the chain is intact."""
        for index in range(len(self.entries)):
            broken = self.seal_break(index) or self.link_break(index)
            if broken is not None:
                return broken
        return None

    def _skips_inserted(self, index: int, prev_hash: str) -> bool:
        """Entry ``index`` links to what its predecessor should link to, and nothing to it."""
        if index < 1 or index in self._anchored:
            return False
        return (
            prev_hash == self.expected(index - 1)
            and self.entries[index - 1].hash not in self._referenced
        )

    def _is_stray(self, index: int) -> bool:
        """Entry ``index`` links nowhere, and the next one links to what it should have."""
        after = index + 1
        if after >= len(self.entries) or after in self._anchored:
            return False
        return (
            self.entries[after].prev_hash == self.expected(index)
            and self.entries[index].hash not in self._referenced
        )

    def _nameof_expected(self, index: int) -> str:
        """Name the entry whose hash entry ``index`` must link to."""
        expected = self.expected(index)
        if expected in self._by_hash:
            return self._name(self._by_hash[expected])
        return "the start" if expected == self._start else "the hash it follows"


def verify(entries: Sequence[Entry], start: str = GENESIS) -> list[Break]:
    """Every break of a chain (empty: intact); see :class:`Chain`."""
    return Chain(entries, start).breaks()


def first_break(entries: Sequence[Entry], start: str = GENESIS) -> Break | None:
    """The first break of a chain, or None when it is intact; see :class:`Chain`."""
    return Chain(entries, start).first_break()
