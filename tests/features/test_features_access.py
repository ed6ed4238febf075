"""Per-statement access signals on real SQL: what counts as a page of a paginated read, and
as a sweep of people by key range."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from features.access import event_features
from features.catalog import Catalog
from features.enrich import enrich
from streams.schema import conform

CATALOG = Catalog.loads(
    """
[tables."public.citizens"]
rows = 30000
columns = ["id", "national_id", "full_name", "phone", "address", "birth_date"]
"""
)
PAGES = {
    # OFFSET paging and keyset paging walk a table page by page
    "SELECT national_id, phone FROM citizens ORDER BY id LIMIT 100 OFFSET 300": 1.0,
    "SELECT id, national_id, phone FROM citizens WHERE id > 1500 ORDER BY id LIMIT 500": 1.0,
    # not pages: a lookup, a top-10 aggregate, a plain filtered read, a bare LIMIT
    "SELECT full_name, phone FROM citizens WHERE national_id = '11010519491231002X'": 0.0,
    "SELECT birth_date, count(*) FROM citizens WHERE id > 0 GROUP BY 1 LIMIT 10": 0.0,
    "SELECT full_name FROM citizens WHERE birth_date > '1990-01-01'": 0.0,
    "SELECT full_name FROM citizens LIMIT 5": 0.0,
}


SWEEPS = {
    # people taken by their position in the table
    "SELECT full_name, phone FROM citizens WHERE id BETWEEN 1201 AND 1300": 100.0,
    "SELECT c.phone FROM citizens c WHERE c.id BETWEEN 5 AND 104 AND c.city = 'x'": 100.0,
    # not sweeps: a count over a range, a range of birth dates, a lookup
    "SELECT count(*) FROM citizens WHERE id BETWEEN 1 AND 30000": 0.0,
    "SELECT full_name FROM citizens WHERE birth_date BETWEEN '1990-01-01' AND '1990-12-31'": 0.0,
    "SELECT full_name, phone FROM citizens WHERE national_id = '11010519491231002X'": 0.0,
}


def _signals(statements: dict[str, float], status: str = "counted") -> pl.DataFrame:
    rows = [
        {
            "event_time": datetime(2024, 3, 4, 9, i, tzinfo=UTC),
            "source_format": "pgaudit-csv",
            "event_kind": "statement",
            "user": "officer01",
            "statement": sql,
            "command_tag": "SELECT",
            "rows": 100 if status == "counted" else None,
            "rows_status": status,
            "session_id": "s1",
            "tables": ["public.citizens"],
            "database": "records",
        }
        for i, sql in enumerate(statements)
    ]
    events = conform(pl.DataFrame(rows, schema_overrides={"tables": pl.List(pl.String)}))
    return event_features(enrich(events, CATALOG, id_key=b"access-test-key-0123"))


def test_offset_and_keyset_paging_are_pages() -> None:
    signals = _signals(PAGES)
    assert dict(zip(PAGES, signals["pages"].to_list(), strict=True)) == PAGES


def test_filtered_reads_of_people_without_counts_are_unsized() -> None:
    statements = {
        "SELECT full_name, phone FROM citizens WHERE birth_date > '1990-01-01'": 1.0,
        "SELECT full_name, phone FROM citizens WHERE id BETWEEN 1 AND 100": 0.0,  # range
        "SELECT full_name FROM citizens WHERE national_id = '11010519491231002X'": 0.0,
        "SELECT count(*) FROM citizens WHERE birth_date > '1990-01-01'": 0.0,  # aggregate
    }
    counted = _signals(statements)
    assert counted["unsized_reads"].sum() == 0  # the source counted every read's rows
    unsized = _signals(statements, status="not_logged")
    assert dict(zip(statements, unsized["unsized_reads"].to_list(), strict=True)) == statements


def test_sweeps_are_sensitive_rows_read_by_key_range() -> None:
    signals = _signals(SWEEPS)
    assert dict(zip(SWEEPS, signals["sweep_rows"].to_list(), strict=True)) == SWEEPS
