"""Per-statement access signals: what one enriched event contributes to a user's windows.

:func:`event_features` turns enriched events (:data:`features.enrich.ENRICHED_SCHEMA`) into
one row per statement with the numeric signals the windows sum up
(:data:`EVENT_SIGNALS`) and the identity/context columns they group by. Session events
(connect, disconnect) carry no reads and are dropped here; failed statements read nothing.

What counts as a read, and which rows are sensitive
---------------------------------------------------
- A *read* is a ``select`` or ``fetch``, or a ``copy`` that exports (``COPY ... TO``).
  ``rows_read`` is its ``rows_estimate`` (counted by the source where it could, else sized
  from the catalog or the statement shape: ``estimated`` says which).
- ``sensitive_rows`` are the rows of a read that returned at least one classed column and
  is not aggregate-only: ``SELECT area, count(*) ... GROUP BY area`` scans people but
  returns no person.
- ``identifier_rows`` / ``contact_rows``: the same, restricted to reads returning an
  identifier class (one person per value) / a way to reach someone.
- ``unsized_reads``: reads returning people's classed columns whose row count neither the
  source logged nor the statement's shape bounds (a filtered read on MariaDB, which counts
  no rows): ``sensitive_rows`` counts them as 0, this says they happened.
- ``sweep_rows``: sensitive rows of reads that walk a surrogate-key range
  (``WHERE id BETWEEN a AND b``): people taken by position in the table, not by who they
  are - how a script pages through everyone a few hundred at a time.
- A grouped aggregate (``GROUP BY`` with an aggregate) returns groups, not people, even
  when a group key derives from a sensitive column (``substr(national_id, 1, 2)``).
  Known gap: grouping by a raw identifier column returns one row per person and is
  counted as groups.

>>> import datetime as dt
>>> ev = pl.DataFrame({
...     "event_time": [dt.datetime(2024, 3, 4, 9, tzinfo=dt.UTC)] * 2,
...     "event_kind": ["statement"] * 2, "user": ["d07"] * 2,
...     "client_ip": ["10.0.0.7"] * 2, "session_id": ["s1"] * 2,
...     "statement_kind": ["select"] * 2, "error_code": [None, None],
...     "fingerprint": ["SELECT phone FROM citizens", "SELECT count(*) FROM citizens"],
...     "fingerprint_id": [1, 2], "tables_read": [["public.citizens"]] * 2,
...     "sensitive_classes": [["phone"], []], "aggregate_only": [False, True],
...     "has_aggregate": [False, True], "has_group_by": [False, False],
...     "is_export": [False, False], "has_offset": [False, False], "is_lookup": [False, False],
...     "has_limit": [False, False], "has_where": [False, False],
...     "subject_keys": [[], []], "key_range_rows": [None, None], "rows_estimate": [300, 1],
...     "rows_estimate_source": ["logged", "logged"],
... }, schema_overrides={"fingerprint_id": pl.UInt64, "subject_keys": pl.List(pl.UInt64)})
>>> event_features(ev).select("rows_read", "sensitive_rows", "contact_rows").rows()
[(300.0, 300.0, 300.0), (1.0, 0.0, 0.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from features.column_classes import IDENTIFIER_CLASSES

#: Classes that say how to reach a person.
CONTACT_CLASSES: Final = frozenset({"phone", "email", "address"})

#: Numeric per-statement signals (Float64), summed per window except ``sensitive_rows``
#: whose per-window maximum is also kept (``max_statement_rows``).
EVENT_SIGNALS: Final = (
    "rows_read",
    "sensitive_rows",
    "identifier_rows",
    "contact_rows",
    "exports",
    "export_rows",
    "pages",
    "lookups",
    "sweep_rows",
    "unsized_reads",
    "estimated_rows",
)

#: Columns of :func:`event_features` besides the signals.
EVENT_CONTEXT: Final = (
    "event_time",
    "user",
    "client_ip",
    "session_id",
    "fingerprint",
    "fingerprint_id",
    "tables_read",
    "classes",
    "subject_keys",
)

_READ_KINDS: Final = ("select", "fetch")


#: One page of a paginated read: ``LIMIT n OFFSET k``, or keyset paging (``WHERE id > k
#: ... LIMIT n``, the fast way to dump a table page by page) - a LIMIT under a filter that
#: is not an aggregate or a one-row lookup.
_page = pl.col("has_offset").fill_null(False) | (
    pl.col("has_limit").fill_null(False)
    & pl.col("has_where").fill_null(False)
    & ~pl.col("has_aggregate").fill_null(False)
    & ~pl.col("is_lookup").fill_null(False)
)


def _has_any(classes: frozenset[str]) -> pl.Expr:
    return pl.col("sensitive_classes").list.set_intersection(pl.lit(sorted(classes))).list.len() > 0


def event_features(enriched: pl.DataFrame, keep: Sequence[str] = ()) -> pl.DataFrame:
    """One row per statement: context columns, then :data:`EVENT_SIGNALS` (then the
    columns named in ``keep``, passed through).

    Input order is kept (the windows and first-seen marks rely on log order).
    """
    ok = pl.col("error_code").is_null()
    is_read = ok & (
        pl.col("statement_kind").is_in(_READ_KINDS)
        | ((pl.col("statement_kind") == "copy") & pl.col("is_export").fill_null(False))
    )
    rows = pl.when(is_read).then(pl.col("rows_estimate").fill_null(0)).otherwise(0).cast(pl.Float64)
    returns_people = ~(
        pl.col("aggregate_only").fill_null(False)
        | (pl.col("has_aggregate").fill_null(False) & pl.col("has_group_by").fill_null(False))
    )
    sensitive = returns_people & (pl.col("sensitive_classes").list.len() > 0)
    estimated = pl.col("rows_estimate_source").fill_null("none") != "logged"
    zero = pl.lit(0.0)
    return (
        enriched.lazy()
        .filter((pl.col("event_kind") == "statement") & pl.col("user").is_not_null())
        .with_columns(
            rows_read=rows,
            sensitive_rows=pl.when(sensitive).then(rows).otherwise(zero),
            identifier_rows=pl.when(returns_people & _has_any(IDENTIFIER_CLASSES))
            .then(rows)
            .otherwise(zero),
            contact_rows=pl.when(returns_people & _has_any(CONTACT_CLASSES))
            .then(rows)
            .otherwise(zero),
            exports=(ok & pl.col("is_export").fill_null(False)).cast(pl.Float64),
            export_rows=pl.when(ok & pl.col("is_export").fill_null(False))
            .then(rows)
            .otherwise(zero),
            pages=(ok & _page).cast(pl.Float64),
            lookups=(ok & pl.col("is_lookup").fill_null(False)).cast(pl.Float64),
            sweep_rows=pl.when(sensitive & pl.col("key_range_rows").is_not_null())
            .then(rows)
            .otherwise(zero),
            unsized_reads=(is_read & sensitive & pl.col("rows_estimate").is_null()).cast(
                pl.Float64
            ),
            estimated_rows=pl.when(estimated).then(rows).otherwise(zero),
            classes=pl.when(sensitive)
            .then(pl.col("sensitive_classes"))
            .otherwise(pl.lit([], dtype=pl.List(pl.String))),
            tables_read=pl.col("tables_read").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            subject_keys=pl.col("subject_keys").fill_null(pl.lit([], dtype=pl.List(pl.UInt64))),
            client_ip=pl.col("client_ip").fill_null(""),
            fingerprint=pl.col("fingerprint").fill_null(""),
        )
        .select(*EVENT_CONTEXT, *EVENT_SIGNALS, *keep)
        .collect()
    )
