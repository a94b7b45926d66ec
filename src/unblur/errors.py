"""Exceptions that carry a message meant for the user.

The command line prints :class:`UserError` as one line and exits with code 2; every other
exception is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input from the user (file, parameter, kernel): reported without a traceback."""
