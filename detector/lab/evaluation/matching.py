"""The scoring rules: which alert catches which injected threat, and which alerts are false.

The same rules score our detector and every baseline (:class:`~detector.lab.evaluation.
detections.Detection`; ours only at severity medium or higher). They are the rules the
detection tests (``tests/detector/test_detect_sample.py``,
``tests/lab/test_detect_simulated.py``) apply,
kept here in one place, except that the alert's kind is not required to match the label's
(a baseline has no kinds).

Caught
    A positive label (``negative`` false) of user *u* over [*s*, *e*] is caught by a
    detection of *u* whose activity [start, end] overlaps [*s* - 5 min, *e*] and which
    fired at a time in [*s*, *e* + latency]; latency is 1 day for ``low_and_slow`` (its
    evidence is daily), 1 hour otherwise. The *delay* is the first such detection's time
    minus *s*. Per kind, overall, and for the labels starting after the warm-up: caught /
    total, median and maximum delay of the caught labels.
False alert
    A detection that overlaps no positive label of its user widened to
    [*s* - 5 min, *e* + 1 day] (a late or long alert on a real threat is late, not false).
    Hard negatives are not consulted: an alert on one is false, like any other.
False-alert rate
    Distinct (user, UTC day of detection) pairs of false alerts detected after the
    warm-up, per 100 *active user-days* after the warm-up (distinct (user, UTC day) with at
    least one statement in the logs). The warm-up ends at midnight UTC ``warmup_days``
    days after the day of the first statement; detections before it are counted apart.
Hard negatives alerted
    Hard-negative labels that a false detection of the same user overlaps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

import polars as pl

from detector.lab.evaluation.detections import Detection, detections_frame
from detector.lab.evaluation.results import DetectorScore, KindScore

#: An alert may start this long before the labelled threat (its first statements may
#: be a minute early, and a window may open before them).
PRE_START: Final = dt.timedelta(minutes=5)
#: How long after a threat's end its alert may first fire, per kind (day windows of
#: low-and-slow close at midnight).
LATENCY: Final = {"low_and_slow": dt.timedelta(days=1)}
DEFAULT_LATENCY: Final = dt.timedelta(hours=1)
#: An alert overlapping a threat widened by this much after its end points at it.
FALSE_GRACE: Final = dt.timedelta(days=1)
#: Kinds of the injected threats, in report order; other positive kinds follow by name.
KIND_ORDER: Final = (
    "smash_and_grab",
    "paginated_dump",
    "enumeration",
    "compromised_account",
    "sensitive_pivot",
    "service_account_misuse",
    "low_and_slow",
)
#: Kinds whose delay target is a day, not minutes; every other kind is a burst.
SLOW_KINDS: Final = frozenset({"low_and_slow"})


def warmup_end(first_event: dt.datetime, days: int) -> dt.datetime:
    """Midnight UTC ``days`` days after the day of ``first_event``.

    >>> warmup_end(dt.datetime(2024, 3, 4, 1, 30, tzinfo=dt.UTC), 3).isoformat()
    '2024-03-07T00:00:00+00:00'
    """
    day = first_event.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + dt.timedelta(days=days)


def _frame(detections: Sequence[Detection] | pl.DataFrame) -> pl.DataFrame:
    return detections if isinstance(detections, pl.DataFrame) else detections_frame(detections)


def _latency() -> pl.Expr:
    expr = pl.lit(DEFAULT_LATENCY)
    for kind, latency in LATENCY.items():
        expr = pl.when(pl.col("kind") == kind).then(pl.lit(latency)).otherwise(expr)
    return expr


def label_matches(
    labels: pl.DataFrame, detections: Sequence[Detection] | pl.DataFrame
) -> pl.DataFrame:
    """One row per positive label (label order): its columns, ``detected_at`` of the first
    detection that catches it (null when missed) and ``delay_s`` (seconds)."""
    positives = labels.filter(~pl.col("negative")).with_row_index("_label")
    dets = _frame(detections).select(
        "user", pl.col("start").alias("d_start"), pl.col("end").alias("d_end"), "detected_at"
    )
    first = (
        positives.join(dets, on="user")
        .filter(
            (pl.col("d_start") <= pl.col("end"))
            & (pl.col("d_end") >= pl.col("start") - PRE_START)
            & (pl.col("detected_at") >= pl.col("start"))
            & (pl.col("detected_at") <= pl.col("end") + _latency())
        )
        .group_by("_label")
        .agg(pl.col("detected_at").min())
    )
    return (
        positives.join(first, on="_label", how="left")
        .sort("_label")
        .with_columns(
            ((pl.col("detected_at") - pl.col("start")).dt.total_microseconds() / 1e6).alias(
                "delay_s"
            )
        )
        .drop("_label")
    )


def false_detections(
    labels: pl.DataFrame, detections: Sequence[Detection] | pl.DataFrame
) -> pl.DataFrame:
    """The detections that point at no positive label of their user (input order)."""
    dets = _frame(detections).with_row_index("_det")
    widened = labels.filter(~pl.col("negative")).select(
        "user",
        (pl.col("start") - PRE_START).alias("l_start"),
        (pl.col("end") + FALSE_GRACE).alias("l_end"),
    )
    explained = (
        dets.join(widened, on="user")
        .filter((pl.col("start") <= pl.col("l_end")) & (pl.col("end") >= pl.col("l_start")))
        .select("_det")
        .unique()
    )
    return dets.join(explained, on="_det", how="anti").sort("_det").drop("_det")


def kind_score(kind: str, matches: pl.DataFrame) -> KindScore:
    """Caught / total and delays of the ``matches`` rows (:func:`label_matches`).

    >>> m = pl.DataFrame({"delay_s": [60.0, None, 180.0, 30.0]})
    >>> kind_score("enumeration", m)
    KindScore(kind='enumeration', caught=3, total=4, median_delay_s=60.0, max_delay_s=180.0)
    """
    delays = matches["delay_s"].drop_nulls()
    median = delays.median() if delays.len() else None
    top = delays.max() if delays.len() else None
    return KindScore(
        kind,
        delays.len(),
        matches.height,
        None if median is None else float(median),  # type: ignore[arg-type]
        None if top is None else float(top),  # type: ignore[arg-type]
    )


def _kinds(kinds: Sequence[str]) -> list[str]:
    present = set(kinds)
    return [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))


def score_detector(
    name: str,
    description: str,
    detections: Sequence[Detection] | pl.DataFrame,
    labels: pl.DataFrame,
    activity: pl.DataFrame,
    warmup_until: dt.datetime,
    note: str = "",
) -> DetectorScore:
    """Score one detector's detections against the labels (see the module docstring).

    Parameters
    ----------
    name, description
        How the report names the detector.
    detections
        Its alerts (:class:`Detection` objects, or a frame with their columns).
    labels
        :data:`detector.lab.evaluation.inputs.LABEL_SCHEMA` frame, hard negatives included.
    activity
        Distinct ``(user, day)`` pairs with a statement
        (:func:`detector.lab.evaluation.statements.active_days`).
    warmup_until
        End of the warm-up (:func:`warmup_end`).
    note
        Carried into the score (what limits these numbers).
    """
    dets = _frame(detections)
    matches = label_matches(labels, dets)
    kinds = tuple(
        kind_score(k, matches.filter(pl.col("kind") == k)) for k in _kinds(matches["kind"])
    )
    false = false_detections(labels, dets)
    after = pl.col("detected_at") >= warmup_until
    false_pairs = (
        false.filter(after).select("user", pl.col("detected_at").dt.date()).unique().height
    )
    active = activity.filter(pl.col("day") >= warmup_until.date()).height
    negatives = labels.filter(pl.col("negative")).with_row_index("_neg")
    hit = (
        negatives.join(false.select("user", "start", "end"), on="user", suffix="_det")
        .filter((pl.col("start_det") <= pl.col("end")) & (pl.col("end_det") >= pl.col("start")))
        .select("_neg")
        .unique()
        .height
    )
    return DetectorScore(
        name=name,
        description=description,
        kinds=kinds,
        overall=kind_score("overall", matches),
        burst=kind_score("burst", matches.filter(~pl.col("kind").is_in(sorted(SLOW_KINDS)))),
        after_warmup=kind_score("after warm-up", matches.filter(pl.col("start") >= warmup_until)),
        alerts=dets.height,
        false_pairs=false_pairs,
        active_user_days=active,
        false_per_100=100.0 * false_pairs / active if active else None,
        warmup_alerts=dets.filter(~after).height,
        warmup_false_alerts=false.filter(~after).height,
        hard_negatives_alerted=hit,
        hard_negatives=negatives.height,
        note=note,
    )
