"""Bundling: link signals across agencies into bundles, alert the casework consultation,
answer hit/no-hit questions, and draw the neighbourhood picture (docs/bundling.md).

Flow: ``signals.<type>`` -> :mod:`~signalhub.bundling.process` (Kafka edge) ->
:class:`Bundler` (decode, pseudonymise in ``signalhub-bundling``, SQLite state, policy
``signalhub.bundling``) -> ``signals.casework_alert`` -> the enforcer -> ``deliveries.zvh``.
"""

from __future__ import annotations

from signalhub.bundling.core import ALERT_TYPE, HUB_AGENCY, Bundler, iso_week
from signalhub.bundling.hit_no_hit import Answer, LogEntry, ask, read_log, verify_log
from signalhub.bundling.rules import BundlingPolicy, RuleDecision, bundle_input
from signalhub.bundling.service import Progress, ask_hit_no_hit, progress, render_wijkbeeld
from signalhub.bundling.store import Alert, BundleStore, Contribution, store_path
from signalhub.bundling.subjects import (
    BUNDLING_DOMAIN,
    CASEWORK_DOMAIN,
    Subject,
    address_key,
    subjects_of,
)
from signalhub.bundling.wijkbeeld import Cell, cells, render_count, to_csv, to_html

__all__ = [
    "ALERT_TYPE",
    "BUNDLING_DOMAIN",
    "CASEWORK_DOMAIN",
    "HUB_AGENCY",
    "Alert",
    "Answer",
    "BundleStore",
    "Bundler",
    "BundlingPolicy",
    "Cell",
    "Contribution",
    "LogEntry",
    "Progress",
    "RuleDecision",
    "Subject",
    "address_key",
    "ask",
    "ask_hit_no_hit",
    "bundle_input",
    "cells",
    "iso_week",
    "progress",
    "read_log",
    "render_count",
    "render_wijkbeeld",
    "store_path",
    "subjects_of",
    "to_csv",
    "to_html",
    "verify_log",
]
