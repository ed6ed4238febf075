"""Analyst verdicts that stick: expected jobs and false positives.

A SOC analyst who closes an alert as "expected job" or "false positive" records it in a
feedback file (TOML, ``--feedback FILE`` or ``[detection] feedback``); every later run
honours it:

- ``[[expected]]``: activity of these users (names or globs), optionally only these
  threat kinds, these hours of the day (UTC) and until a date, is a known job. It raises
  no alert, and it teaches the baselines like any normal window, so the detector learns
  the job instead of being blind to everything the account does.
- ``[[false_positive]]``: this alert (its deterministic ``id``) was wrong. It is kept in
  the output with ``status = "false_positive"``, stops collecting, and the activity it
  covered teaches the baselines (it is normal for that user after all).

.. code-block:: toml

    [[expected]]
    user = "etl_*"
    kinds = ["smash_and_grab"]
    hours = [1, 2, 3]
    until = 2026-12-31
    note = "nightly load, OPS-123"

    [[false_positive]]
    alert = "8b215e39648ab4a7"
    note = "approved data request DR-42"

>>> fb = Feedback.loads('[[expected]]\\nuser = "etl_*"\\nkinds = ["smash_and_grab"]\\n')
>>> fb.expected[0].user, fb.expected[0].kinds
('etl_*', ('smash_and_grab',))
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from detector.config import glob_regex
from detector.exceptions import FeedbackError
from detector.rules.schema import KINDS

_ALERT_ID: Final = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class ExpectedJob:
    """Activity an analyst declared normal."""

    user: str
    kinds: tuple[str, ...] = ()
    hours: tuple[int, ...] = ()
    until: dt.date | None = None
    note: str = ""

    def expr(self) -> pl.Expr:
        """True for window-frame / match rows this verdict covers."""
        cond = _glob_expr(self.user)
        if self.kinds:
            cond &= pl.col("kind").is_in(list(self.kinds))
        if self.hours:
            cond &= pl.col("first_time").dt.hour().is_in(list(self.hours))
        if self.until is not None:
            cond &= pl.col("first_time").dt.date() <= self.until
        return cond


@dataclass(frozen=True)
class FalsePositive:
    """One alert an analyst closed as wrong."""

    alert: str
    note: str = ""


@dataclass(frozen=True)
class Feedback:
    """Every verdict of one feedback file."""

    expected: tuple[ExpectedJob, ...] = ()
    false_positives: tuple[FalsePositive, ...] = ()

    @property
    def dismissed(self) -> frozenset[str]:
        """Ids of alerts closed as false positives."""
        return frozenset(f.alert for f in self.false_positives)

    def expected_mask(self, matches: pl.DataFrame) -> pl.Series:
        """Which matches an expected-job verdict covers."""
        if not self.expected or matches.is_empty():
            return pl.Series("expected", [False] * matches.height)
        cond = pl.any_horizontal(*(e.expr() for e in self.expected))
        return matches.select(cond.alias("expected")).to_series()

    @classmethod
    def load(cls, path: str | Path) -> Feedback:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise FeedbackError(f"cannot read feedback file {path}: {exc.strerror}") from exc
        return cls.loads(text, source=str(path))

    @classmethod
    def loads(cls, text: str, *, source: str = "<feedback>") -> Feedback:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FeedbackError(f"{source}: not valid TOML: {exc}") from exc
        unknown = set(data) - {"expected", "false_positive"}
        if unknown:
            raise FeedbackError(f"{source}: unknown section(s) {sorted(unknown)}")
        expected = tuple(
            _expected(item, f"{source}: expected[{k}]")
            for k, item in enumerate(data.get("expected", []))
        )
        false_positives = tuple(
            _false_positive(item, f"{source}: false_positive[{k}]")
            for k, item in enumerate(data.get("false_positive", []))
        )
        return cls(expected, false_positives)


def _glob_expr(pattern: str) -> pl.Expr:
    """User-name glob (``*``, ``?``) as a polars regex match."""
    return pl.col("user").str.contains(glob_regex(pattern))


def _keys(item: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(item, dict):
        raise FeedbackError(f"{where}: expected a table")
    unknown = set(item) - allowed
    if unknown:
        raise FeedbackError(f"{where}: unknown key(s) {sorted(unknown)}")
    return item


def _note(item: Mapping[str, Any], where: str) -> str:
    note = item.get("note", "")
    if not isinstance(note, str):
        raise FeedbackError(f"{where}.note: must be a string")
    return note


def _expected(raw: Any, where: str) -> ExpectedJob:
    item = _keys(raw, where, {"user", "kinds", "hours", "until", "note"})
    user = item.get("user")
    if not isinstance(user, str) or not user:
        raise FeedbackError(f"{where}.user: a user name or glob is required")
    kinds = item.get("kinds", [])
    if not isinstance(kinds, list) or not all(k in KINDS for k in kinds):
        raise FeedbackError(f"{where}.kinds: a list of threat kinds from {list(KINDS)}")
    hours = item.get("hours", [])
    if not isinstance(hours, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in hours
    ):
        raise FeedbackError(f"{where}.hours: a list of hours of the day, 0-23 (UTC)")
    until = item.get("until")
    if until is not None and (not isinstance(until, dt.date) or isinstance(until, dt.datetime)):
        raise FeedbackError(f"{where}.until: a date such as 2026-12-31")
    return ExpectedJob(user, tuple(kinds), tuple(hours), until, _note(item, where))


def _false_positive(raw: Any, where: str) -> FalsePositive:
    item = _keys(raw, where, {"alert", "note"})
    alert = item.get("alert")
    if not isinstance(alert, str) or not _ALERT_ID.match(alert):
        raise FeedbackError(f"{where}.alert: the alert's 16-hex-digit id is required")
    return FalsePositive(alert, _note(item, where))
