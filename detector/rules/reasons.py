"""Reason templates of threat rules: how window values render in sentences, and the check
every template passes when its rule is loaded.

Nulls render as ``n/a`` whatever the format spec, lists comma-joined (``none`` when
empty), booleans ``yes``/``no``, times as ``YYYY-MM-DD HH:MM:SS+00:00``.

>>> FORMATTER.vformat("{n:,.0f} rows of {c}", (), {"n": Value(1234.5), "c": Value([])})
'1,234 rows of none'
"""

from __future__ import annotations

import string
from datetime import datetime
from typing import Any, Final

from detector.rules.vocabulary import WINDOW_COLUMNS


class Value:
    """Formats one window value the way reasons want it (nulls, lists, booleans)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __format__(self, spec: str) -> str:
        v = self.v
        if v is None or (isinstance(v, float) and v != v):
            return "n/a"
        if isinstance(v, list | tuple):
            return format(", ".join(str(x) for x in v) or "none", spec)
        if isinstance(v, bool) and not spec:
            return "yes" if v else "no"
        if isinstance(v, datetime) and not spec:
            return v.isoformat(sep=" ", timespec="seconds")
        return format(v, spec)


FORMATTER: Final = string.Formatter()


def template_fields(template: str) -> set[str]:
    return {f for _, f, _, _ in FORMATTER.parse(template) if f is not None}


def check_template(template: Any, key: str, row: dict[str, Any], fail: Any) -> None:
    if not isinstance(template, str) or not template.strip():
        raise fail(key, "must be a non-empty string")
    try:
        parsed = list(FORMATTER.parse(template))
    except ValueError as exc:
        raise fail(key, f"bad template: {exc}") from exc
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name != "scale_name" and name not in WINDOW_COLUMNS:
            raise fail(key, f"unknown field {{{name}}}")
        if conversion or "{" in (spec or ""):
            raise fail(key, f"field {{{name}}}: conversions and nested specs are not supported")
    values = {k: Value(v) for k, v in row.items()} | {"scale_name": Value("hour")}
    try:
        FORMATTER.vformat(template, (), values)
    except (ValueError, TypeError) as exc:
        raise fail(key, f"does not render: {exc}") from exc
