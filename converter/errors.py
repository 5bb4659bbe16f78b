"""Errors the converter reports to its user: one line each, saying what to do."""


class ConversionError(Exception):
    """A conversion that cannot go on; ``str(error)`` is the one-line message for the user."""
