"""The one error type for a user's mistake (a name that does not exist, a service that is not running).

Library code raises :class:`UserError` with a message that names the fix; the ``countyhealth`` command turns
it — and the few library errors that mean the same thing (see ``countyhealth.cli.user_error``) — into one
line on stderr and exit status 2. ``-v`` shows the traceback as well.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message says how, in one line."""

    def __str__(self) -> str:  # KeyError subclasses would otherwise print the message quoted
        return str(self.args[0]) if self.args else ""


class NotFound(UserError, KeyError):
    """A named thing (source, batch, person) that does not exist. Still a KeyError for existing callers."""
