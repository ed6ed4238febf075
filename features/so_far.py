"""The hour so far and the day so far: a longer window judged each time one of its parts
closes, so hour and day patterns fire within minutes of the activity that trips them
instead of at the window's end.

When a user's 5-minute window closes, their *hour so far* is the hour's closed 5-minute
windows added up; when an hour closes, their *day so far* is the day's closed hours added
up. A so-far row has the longer window's scale and start, and ends where its last part
ends (``window_end`` < ``window_start`` + the scale's length tells it apart). It is made of
closed parts only, so it does not depend on how the input was batched. A window's last
part gives none: the window itself closes then.

Everything is computed for all the parts a watermark step closed at once, with a fixed
number of polars operations (no loop over parts): sums are cumulative sums, a distinct
count is the cumulative count of first sightings, listed sets and evidence are the rows
seen by then.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from features.window_parts import (
    COUNTED,
    EVIDENCE_DTYPE,
    EVIDENCE_LIMIT,
    EVIDENCE_ORDER,
    LISTED,
    SUMS,
    OpenWindows,
    top_evidence,
)

#: The key of a so-far row: the user, the longer window, and where the so-far ends.
_AT: Final = ("user", "window_start", "window_end")
_BY: Final = ("user", "window_start")


def _parts(frame: pl.DataFrame, whole: dt.timedelta, part: dt.timedelta) -> pl.DataFrame:
    """A parts' frame keyed by the longer window: ``window_start`` truncated, ``_t`` the
    end of the part the row came from."""
    return frame.with_columns(
        _t=pl.col("window_start") + part, window_start=pl.col("window_start").dt.truncate(whole)
    )


def _before(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of earlier parts, already added up per longer window: seen before any new part."""
    return frame.with_columns(_t=pl.col("window_start"))


def so_far(
    earlier: OpenWindows | None,
    closed: OpenWindows,
    scale: str,
    whole: dt.timedelta,
    part: dt.timedelta,
) -> tuple[pl.DataFrame, OpenWindows]:
    """So-far rows of ``scale`` for every window in ``closed`` (parts of length ``part``,
    keyed by their own start) and the added-up parts to keep for the next call.

    ``earlier`` holds the parts closed before, keyed by the longer window's start (the
    second value this function returned).
    """
    running = _running_sums(earlier, closed, whole, part)
    # one row per new part, except a window's last (the window itself closes with it)
    ends = pl.col("window_end") < pl.col("window_start") + whole
    rows = running.filter(pl.col("_new") & ends).drop("_t", "_new")
    firsts = {
        name: (
            (_parts(frame, whole, part) if earlier is None else pl.concat([
                _before(earlier.sets[name]), _parts(frame, whole, part)
            ]))
            .group_by(*_BY, "value")
            .agg(pl.col("_t").min())
        )
        for name, frame in closed.sets.items()
    }  # fmt: skip
    keys = rows.select(_AT).sort(_AT)
    rows = _distinct_so_far(rows, keys, firsts)
    new_evidence = _parts(closed.evidence, whole, part)
    evidence = (
        new_evidence
        if earlier is None
        else pl.concat([_before(earlier.evidence), new_evidence], how="diagonal_relaxed")
    )
    rows = rows.join(_evidence_so_far(keys, evidence), on=_AT, how="left").with_columns(
        *(pl.col(out).fill_null(0.0) for out in COUNTED.values()),
        *(pl.col(n).fill_null(pl.lit([], dtype=pl.List(pl.String))) for n in LISTED),
        scale=pl.lit(scale),
    )
    kept = OpenWindows(
        running.unique(subset=_BY, keep="last", maintain_order=True).drop(
            "_t", "_new", "window_end"
        ),
        {name: frame.drop("_t") for name, frame in firsts.items()},
        top_evidence(evidence.drop("_t")),
    )
    return rows, kept


def _running_sums(
    earlier: OpenWindows | None, closed: OpenWindows, whole: dt.timedelta, part: dt.timedelta
) -> pl.DataFrame:
    """Every part's sums added up from its window's start (``_new``: a part just closed)."""
    new_sums = _parts(closed.sums, whole, part).with_columns(_new=pl.lit(True))
    sums = (
        new_sums
        if earlier is None
        else pl.concat([_before(earlier.sums).with_columns(_new=pl.lit(False)), new_sums])
    )
    # (user, window, _t) is unique: earlier parts sit at the window's start, new ones at
    # their ends, so the order is total
    return sums.sort(*_BY, "_t").with_columns(
        pl.col("statements", *SUMS).cum_sum().over(_BY),
        pl.col("max_statement_rows").cum_max().over(_BY),
        pl.col("first_time").cum_min().over(_BY),
        pl.col("last_time").cum_max().over(_BY),
        window_end=pl.col("_t"),
    )


def _distinct_so_far(
    rows: pl.DataFrame, keys: pl.DataFrame, firsts: dict[str, pl.DataFrame]
) -> pl.DataFrame:
    """``rows`` with the distinct values seen by each row's end: counted (``COUNTED``) and
    listed (``LISTED``), from each value's first sighting in the window."""
    for name, out in COUNTED.items():
        seen = (
            firsts[name]
            .group_by(*_BY, "_t")
            .agg(pl.len().cast(pl.Float64).alias(out))
            .sort(*_BY, "_t")
            .with_columns(pl.col(out).cum_sum().over(_BY))
        )
        # both sides sorted by time overall, so within each (user, window) too (polars
        # cannot check the latter)
        counted = keys.sort("window_end").join_asof(
            seen.sort("_t"),
            left_on="window_end",
            right_on="_t",
            by=list(_BY),
            strategy="backward",
            check_sortedness=False,
        )
        rows = rows.join(counted.select(*_AT, out), on=_AT, how="left")
    for name in LISTED:
        listed = (
            keys.join(firsts[name], on=_BY)
            .filter(pl.col("_t") <= pl.col("window_end"))
            .sort("value")
            .group_by(_AT)
            .agg(pl.col("value").alias(name))
        )
        rows = rows.join(listed, on=_AT, how="left")
    return rows


def _evidence_so_far(keys: pl.DataFrame, evidence: pl.DataFrame) -> pl.DataFrame:
    """Per so-far row, the top evidence seen by its end."""
    by, descending = EVIDENCE_ORDER
    return (
        keys.join(evidence, on=_BY)
        .filter(pl.col("_t") <= pl.col("window_end"))
        .sort(by, descending=descending, maintain_order=True)
        .group_by(_AT, maintain_order=True)
        .head(EVIDENCE_LIMIT)
        .group_by(_AT, maintain_order=True)
        .agg(pl.struct(*(f.name for f in EVIDENCE_DTYPE.fields)).alias("evidence"))
    )
