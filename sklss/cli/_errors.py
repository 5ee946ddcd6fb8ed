"""The error a command reports as one line, without a traceback."""


class CommandError(Exception):
    """A mistake in how a command was called, reported as one line without a traceback."""
