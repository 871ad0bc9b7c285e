"""Break-glass re-identification: the workflow (:mod:`.workflow`), the requests it keeps
(:mod:`.requests`) and its hash-chained trail (:mod:`.trail`), all in the vault file."""

from signalhub.pseudonym.reidentify.requests import ReidRequest
from signalhub.pseudonym.reidentify.trail import AuditEvent
from signalhub.pseudonym.reidentify.workflow import (
    APPROVALS_NEEDED,
    Reidentification,
    open_reidentification,
    subscriber_domains,
)

__all__ = [
    "APPROVALS_NEEDED",
    "AuditEvent",
    "ReidRequest",
    "Reidentification",
    "open_reidentification",
    "subscriber_domains",
]
