"""What a baseline hands back: its alerts as detections, and what limited it."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from detector.evaluation.detections import Detection, detections_from_frame


@dataclass(frozen=True)
class BaselineRun:
    """The alerts one baseline raised on one statement frame.

    Attributes
    ----------
    detections
        Its alerts, by detection time.
    note
        Why it could not do better than this (e.g. a model with nothing to train on).
    """

    detections: tuple[Detection, ...]
    note: str = ""

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, note: str = "") -> BaselineRun:
        """From a frame with the detection columns (user, start, end, detected_at,
        reason)."""
        return cls(tuple(detections_from_frame(frame)), note)


def thousands(number: pl.Expr) -> pl.Expr:
    """An integer column written with thousands separators, for reasons.

    >>> pl.DataFrame({"n": [7, 1234, 30020]}).select(thousands(pl.col("n")))["n"].to_list()
    ['7', '1,234', '30,020']
    """
    grouped = number.cast(pl.String).str.reverse().str.replace_all(r"(\d{3})", "$1,")
    return grouped.str.reverse().str.strip_chars_start(",")
