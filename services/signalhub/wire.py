"""The wire contract: what the hub's records look like between processes.

One home for the canonical JSON that ids, hashes and memo keys are computed over.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_json"]


def canonical_json(value: Any) -> str:
    """The one canonical serialisation: sorted keys, no whitespace, non-ASCII kept as UTF-8 text.

    Everything that is hashed, compared or used as a key goes through here, so equal values
    always give equal bytes.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
