"""Errors of the application layer (CLI, config, pipeline wiring)."""

from streams.exceptions import ExfilDetectorError


class DetectorError(ExfilDetectorError):
    """Root of the application layer's errors."""


class ConfigError(DetectorError):
    """The configuration file, a flag or an environment variable is invalid."""
