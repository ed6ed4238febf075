"""Errors raised by the SQL-analysis layer.

Every error derives from :class:`FeaturesError`, itself a
:class:`streams.exceptions.ExfilDetectorError`, so callers can catch the whole project's
errors with one clause. Foreign errors (``tomllib``, ``OSError`` ...) are re-raised
``from exc`` so the original traceback survives.
"""

from streams.exceptions import ExfilDetectorError


class FeaturesError(ExfilDetectorError):
    """Root of the feature layer's errors."""


class CatalogError(FeaturesError):
    """The sensitivity catalog could not be read or failed validation.

    The message names the offending TOML key (for example ``tables."public.t".rows``).
    """


class DialectError(FeaturesError):
    """An unknown SQL dialect was named."""


class IdKeyError(FeaturesError):
    """The key for hashing national ID numbers is missing or too short."""
