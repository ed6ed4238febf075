"""The vocabulary threat rules are written in: kinds, scales, severities, and the columns
of the window frame (what :func:`detector.rules.matching.match_rules` sees), with test
helpers that build window rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import polars as pl

from features.windows import EVIDENCE_DTYPE, WINDOW_FEATURES

# fmt: off
KINDS: Final = (
    "smash_and_grab", "paginated_dump", "enumeration", "low_and_slow", "compromised_account",
    "sensitive_pivot", "service_account_misuse",
)
# fmt: on
SCALES: Final = ("statement", "5m", "1h", "1d")
SCALE_NAMES: Final = {"statement": "statement", "5m": "5 minutes", "1h": "hour", "1d": "day"}
#: Severities, least to most severe.
SEVERITIES: Final = ("low", "medium", "high", "critical")
DEFAULT_ESTIMATED_NOTE: Final = (
    "row counts are estimated from the catalog and statement shape; the source did not log them"
)

ColumnKind = Literal["numeric", "boolean", "string", "list", "time", "evidence"]

#: The model features of the window frame, in order.
MODEL_FEATURES: Final = WINDOW_FEATURES
# fmt: off
_EXTRA_NUMERIC: Final = (
    "export_rows", "estimated_rows", "new_tables", "new_templates", "new_ips", "history",
    "hour_surprise", "cusum_sensitive_rows", "excess_days", "multivariate", "raw_score",
    "hour", "weekday",
)
# fmt: on
#: Every window-frame column a rule may name, with its kind (the window frame of ARCHITECTURE.md).
#: ``time`` and ``evidence`` columns can appear in reasons but not in conditions.
WINDOW_COLUMNS: Final[dict[str, ColumnKind]] = {
    "user": "string",
    "role": "string",
    "scale": "string",
    "service": "boolean",
    "window_start": "time",
    "window_end": "time",
    "excess_since": "time",
    **dict.fromkeys(MODEL_FEATURES, "numeric"),
    **{
        f"{p}_{f}": "numeric"
        for p in ("z", "typical", "peer_typical", "max")
        for f in MODEL_FEATURES
    },
    **dict.fromkeys(_EXTRA_NUMERIC, "numeric"),
    **dict.fromkeys(("new_classes", "client_ips", "table_names", "classes"), "list"),
    "evidence": "evidence",
}


def dummy_row() -> dict[str, Any]:
    """A window row with a plausible value in every column (validates templates).

    >>> row = dummy_row()
    >>> row["scale"], row["service"], row["classes"]
    ('1h', False, ['name', 'national_id'])
    """
    t = datetime(2024, 3, 6, 10, tzinfo=UTC)
    samples: dict[str, Any] = {
        "numeric": 12345.6,
        "boolean": False,
        "string": "x",
        "list": ["name", "national_id"],
        "time": t,
        "evidence": [{"time": t, "statement": "SELECT ?", "rows": 1, "tables": ["t"]}],
    }
    row = {name: samples[kind] for name, kind in WINDOW_COLUMNS.items()}
    return row | {"user": "u01", "role": "desk", "scale": "1h", "history": 10}


_DTYPES: Final[dict[str, pl.DataType]] = {
    "numeric": pl.Float64(),
    "boolean": pl.Boolean(),
    "string": pl.String(),
    "list": pl.List(pl.String),
    "time": pl.Datetime("us", "UTC"),
    "evidence": pl.List(EVIDENCE_DTYPE),
}
_DEFAULTS: Final[dict[str, Any]] = {"numeric": 0.0, "boolean": False, "string": "", "list": []}


def window_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A window frame with every :data:`WINDOW_COLUMNS` column, for tests and examples.

    Missing numeric columns are 0 (``typical_``/``peer_typical_``/``max_``: null),
    strings ``""``, lists empty, times 2024-03-06 10:00 UTC, ``history`` 10.

    >>> frame = window_frame([{"user": "u1", "pages": 3}])
    >>> frame.select("user", "pages", "max_statement_rows", "max_pages", "history").row(0)
    ('u1', 3.0, 0.0, None, 10)
    """
    t = datetime(2024, 3, 6, 10, tzinfo=UTC)
    schema = {k: _DTYPES[kind] for k, kind in WINDOW_COLUMNS.items()}
    schema |= {"history": pl.Int64(), "hour": pl.Int8(), "weekday": pl.Int8()}
    nullable = {f"{p}_{f}" for p in ("typical", "peer_typical", "max") for f in MODEL_FEATURES}
    base = {
        k: None if k in nullable else _DEFAULTS.get(kind, t if kind == "time" else [])
        for k, kind in WINDOW_COLUMNS.items()
    } | {"history": 10, "hour": 10, "weekday": 2, "scale": "1h"}
    return pl.DataFrame([base | dict(r) for r in rows], schema=schema)
