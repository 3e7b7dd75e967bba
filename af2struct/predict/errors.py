"""Errors of a prediction run as a whole."""


class InputError(ValueError):
    """A problem with the run's input as a whole (no targets, duplicate or unsafe names, a
    template source that cannot be used)."""
