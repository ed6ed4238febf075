"""Errors of the evaluation: under the project's root, like every other layer's."""

from detector.exceptions import DetectorError


class EvaluationError(DetectorError):
    """A logs directory, its labels or users, or an alerts file cannot be evaluated."""
