"""The web console: operators watch the flow, security officers manage the policy, auditors read.

Public surface: :func:`console_routes` (mounted by ``signalhub up``), :func:`console_app` (the
console alone), :func:`console_context`, and the command group ``console_group``
(``signalhub console serve | user add | user list``). Everything else is internal.
"""

from signalhub.console.app import console_app, console_context, console_routes
from signalhub.console.auth import PERMISSIONS, ROLES, UserStore
from signalhub.console.cli import console_group

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "UserStore",
    "console_app",
    "console_context",
    "console_group",
    "console_routes",
]
