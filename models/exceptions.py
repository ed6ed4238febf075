"""Errors raised by the online models.

Every error derives from :class:`ModelsError`, itself a
:class:`streams.exceptions.ExfilDetectorError`, so callers can catch the whole project's
errors with one clause. Foreign errors (``pickle``, ``OSError`` ...) are re-raised
``from exc`` so the original traceback survives.

Invalid arguments (wrong shapes, negative values, repeated entities where they must be
distinct) raise the built-in ``ValueError``, as numpy and river do.
"""

from streams.exceptions import ExfilDetectorError


class ModelsError(ExfilDetectorError):
    """Root of the model layer's errors."""


class StateError(ModelsError):
    """A saved model state could not be written, read, or belongs to another version."""
