"""Plain functions over the bundler's state for the CLI, an API or the console.

They open the state file read-mostly beside a running bundler (SQLite WAL) and the policy and
keys the settings name, do one thing, and close what they opened.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from signalhub.bundling.hit_no_hit import Answer, ask
from signalhub.bundling.rules import BundlingPolicy
from signalhub.bundling.store import BundleStore, store_path
from signalhub.bundling.wijkbeeld import cells, to_csv, to_html
from signalhub.config import Settings
from signalhub.policy.engine import EmbeddedPolicyEngine
from signalhub.pseudonym.keys import load_key_ring
from signalhub.pseudonym.pseudonyms import Pseudonymiser

__all__ = ["Progress", "ask_hit_no_hit", "progress", "render_wijkbeeld"]


def ask_hit_no_hit(settings: Settings, asker: str, bsn: str) -> Answer:
    """Answer one hit/no-hit question (or refuse it by policy) and log it."""
    ring = load_key_ring(settings)
    engine = EmbeddedPolicyEngine.from_dir(settings.policies_dir)
    try:
        with BundleStore(store_path(settings.state_dir)) as store:
            return ask(
                store, BundlingPolicy(engine), Pseudonymiser(ring.key(), ring.current), asker, bsn
            )
    finally:
        engine.close()


def render_wijkbeeld(settings: Settings, fmt: str = "csv") -> str:
    """The wijkbeeld as CSV or an HTML page, with small-cell suppression at ``wijkbeeld_k``."""
    with BundleStore(store_path(settings.state_dir)) as store:
        found = cells(store)
    if fmt == "html":
        return to_html(found, settings.wijkbeeld_k)
    return to_csv(found, settings.wijkbeeld_k)


class Progress(NamedTuple):
    """How far the bundler is, read from its state (see :func:`progress`)."""

    #: Of the signal ids asked about, how many the bundler has committed to its state.
    processed: int
    #: Signal ids of every casework_alert revision it has published, oldest first.
    alerts_sent: list[str]
    #: Alert revisions decided but not yet published (the outbox between commit and send).
    alerts_pending: int


def progress(settings: Settings, signal_ids: Iterable[str]) -> Progress:
    """How far the bundler is with ``signal_ids``: processed, alerts sent, alerts pending.

    The bundler is done with them when ``processed`` equals their number and no alert is
    pending. Read from its SQLite state, never from Kafka end offsets; before the bundler's
    first commit this is ``(0, [], 0)``.
    """
    path = store_path(settings.state_dir)
    if not path.exists():
        return Progress(0, [], 0)
    with BundleStore(path) as store:
        return Progress(
            len(store.known_signals(signal_ids)),
            store.sent_alert_ids(),
            len(store.unsent_alerts()),
        )
