"""Free-text scrubbing replaces exactly what an ignore-case pattern per identifier would,
checked with hypothesis (the scrubber takes a faster path for ASCII text)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from signalhub.enforcer.generalise import WITHHELD_MARK, scrub_free_text

# ASCII letters and their non-ASCII ignore-case look-alikes (Kelvin sign, long s, dotted and
# dotless i, sharp s), separators, digits and characters special to re templates.
ALPHABET = "aAbBkKsSiI .-,0123456789[]\\<>g\u212a\u017f\u0131\u0130\u00df\u00e9"
TEXTS = st.text(ALPHABET, max_size=40) | st.text(max_size=40)
IDENTIFIERS = st.text(ALPHABET, max_size=8) | st.text(max_size=6)
REPLACEMENTS = st.none() | st.sampled_from(["pn1.k1.abc", "held", "K", "\\g<0>", "x\\1y", ""])


def _reference(text: str, hidden: list[tuple[str, str | None]]) -> str:
    """The scrubber as first written: one compiled pattern per identifier, longer ones first."""

    scrubbed = scrub_free_text(text, _bsn)  # BSNs first, as the scrubber does
    for identifier, replacement in sorted(hidden, key=lambda pair: -len(pair[0])):
        if identifier.strip():
            pattern = re.compile(re.escape(identifier.strip()), re.IGNORECASE)
            scrubbed = pattern.sub((replacement or WITHHELD_MARK).replace("\\", r"\\"), scrubbed)
    return scrubbed


def _bsn(digits: str) -> str:
    return f"pn1.k1.{digits}"


@settings(max_examples=500)
@given(text=TEXTS, hidden=st.lists(st.tuples(IDENTIFIERS, REPLACEMENTS), max_size=4))
def test_scrubbing_matches_one_ignore_case_pattern_per_identifier(
    text: str, hidden: list[tuple[str, str | None]]
) -> None:
    assert scrub_free_text(text, _bsn, hidden) == _reference(text, hidden)
