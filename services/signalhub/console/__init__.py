"""The web console: operators watch the flow, security officers manage the policy, auditors read.

Public surface: :func:`console_routes` (mounted by ``signalhub up``), :func:`console_app` (the
console alone) and :func:`console_context`; everything else is internal. The commands
(``signalhub console serve | user add | user list``) live in :mod:`signalhub.console.cli`, which
the root command loads only when they run, so importing the console never loads a CLI.
"""

from signalhub.console.app import console_app, console_context, console_routes
from signalhub.console.auth import PERMISSIONS, ROLES, UserStore

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "UserStore",
    "console_app",
    "console_context",
    "console_routes",
]
