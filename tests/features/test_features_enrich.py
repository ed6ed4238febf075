"""enrich() on a small hand-made canonical frame."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.catalog import Catalog
from features.enrich import ENRICHED_COLUMNS, ENRICHED_SCHEMA, enrich
from features.exceptions import FeaturesError, IdKeyError
from streams.schema import EVENT_SCHEMA, conform, empty_events

KEY = b"enrich-test-key-0123"
ID_A = "11010519491231002X"
ID_B = "440308199901010012"
ID_C = "110105200002290013"

CATALOG = Catalog.loads(
    """
[tables."public.citizens"]
rows = 1000
columns = ["id", "national_id", "full_name", "phone", "city"]
sensitive = { city = "address" }

[tables."public.orders"]
rows = 5000

[tables."crm.customers"]
rows = 80
columns = ["id", "name", "mobile"]
"""
)


def pg(
    statement: str | None,
    *,
    tag: str,
    rows: int | None = None,
    status: str = "not_logged",
    params: list[str] | None = None,
    session: str = "s1",
    tables: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "source_format": "pgaudit-csv",
        "event_kind": "statement",
        "statement": statement,
        "command_tag": tag,
        "rows": rows,
        "rows_status": status,
        "parameters": params,
        "session_id": session,
        "tables": tables or [],
        "database": "app",
    }


EVENTS: list[dict[str, Any]] = [
    # 0: lookup by ID, counted
    pg(
        f"SELECT national_id, full_name FROM citizens WHERE national_id = '{ID_A}'",
        tag="SELECT",
        rows=1,
        status="counted",
    ),
    # 1: pg_dump style export, rows unknown
    pg("COPY public.citizens TO STDOUT", tag="COPY", rows=0, status="unknown"),
    # 2: cursor fetch
    pg("FETCH 50 FROM c", tag="FETCH", rows=0, status="unknown"),
    # 3: parameterised limit
    pg("SELECT * FROM citizens LIMIT $1", tag="SELECT", params=["30"]),
    # 4: aggregate only
    pg("SELECT count(*) FROM citizens", tag="SELECT"),
    # 5: IN-list lookup of three IDs
    pg(
        f"SELECT phone FROM citizens WHERE national_id IN ('{ID_A}', '{ID_B}', '{ID_C}')",
        tag="SELECT",
    ),
    # 6: MariaDB whole-table read in database crm
    {
        "source_format": "mariadb-audit",
        "event_kind": "statement",
        "database": "crm",
        "statement": "SELECT * FROM customers",
        "command_tag": "SELECT",
        "rows_status": "not_logged",
        "session_id": "m1",
    },
    # 7: a session event
    {"source_format": "pgaudit-csv", "event_kind": "connect", "session_id": "s2"},
    # 8: pgaudit statement text not repeated
    pg("<previously logged>", tag="SELECT", tables=["public.Citizens"]),
    # 9, 10: one multi-statement string logged on each statement's line
    pg("SELECT count(*) FROM citizens; SELECT * FROM orders", tag="SELECT", session="s3"),
    pg("SELECT count(*) FROM citizens; SELECT * FROM orders", tag="SELECT", session="s3"),
    # 11, 12: COPY (query) TO: the SELECT line has the rows, the COPY line logs 0
    pg("COPY (SELECT national_id FROM citizens) TO STDOUT", tag="SELECT", rows=7, status="counted"),
    pg("COPY (SELECT national_id FROM citizens) TO STDOUT", tag="COPY", rows=0, status="unknown"),
    # 13: ID in a bound parameter
    pg("SELECT full_name FROM citizens WHERE national_id = $1", tag="SELECT", params=[ID_B]),
    # 14: same shape as 0 with another literal
    pg(
        f"SELECT national_id, full_name FROM citizens WHERE national_id = '{ID_B}'",
        tag="SELECT",
        rows=1,
        status="counted",
    ),
    # 15: garbage
    pg("hello world this is not sql", tag="SELECT"),
    # 16: write
    pg("UPDATE citizens SET phone = '1' WHERE id = 3", tag="UPDATE", rows=1, status="counted"),
    # 17, 18: a key range, literal and bound (wider than the table); 19: a range of values
    pg("SELECT phone FROM citizens WHERE id BETWEEN 101 AND 250 AND city = 'x'", tag="SELECT"),
    pg("SELECT phone FROM citizens WHERE id BETWEEN $1 AND $2", tag="SELECT", params=["1", "5000"]),
    pg("SELECT phone FROM citizens WHERE full_name BETWEEN 'A' AND 'B'", tag="SELECT"),
    # 20: a key range the source counted
    pg(
        "SELECT phone FROM citizens WHERE id BETWEEN 1 AND 100",
        tag="SELECT",
        rows=90,
        status="counted",
    ),
]


def make_events() -> pl.DataFrame:
    rows = [
        {"event_time": datetime(2024, 5, 1, 8, i, tzinfo=UTC), **e} for i, e in enumerate(EVENTS)
    ]
    return conform(
        pl.DataFrame(
            rows, schema_overrides={"parameters": pl.List(pl.String), "tables": pl.List(pl.String)}
        )
    )


@pytest.fixture(scope="module")
def out() -> pl.DataFrame:
    return enrich(make_events(), CATALOG, id_key=KEY)


def row(out: pl.DataFrame, i: int) -> dict[str, Any]:
    return out.row(i, named=True)


def test_schema_and_order(out: pl.DataFrame) -> None:
    assert out.schema == ENRICHED_SCHEMA
    assert list(ENRICHED_SCHEMA)[: len(EVENT_SCHEMA)] == list(EVENT_SCHEMA)
    assert out.select(list(EVENT_SCHEMA)).equals(make_events())


def test_lookup_counted(out: pl.DataFrame) -> None:
    r = row(out, 0)
    assert r["statement_kind"] == "select" and r["sql_parse_ok"]
    assert r["tables_read"] == ["public.citizens"]
    assert r["columns_read"] == ["public.citizens.national_id", "public.citizens.full_name"]
    assert r["sensitive_classes"] == ["national_id", "name"]
    assert r["is_lookup"] and r["has_where"]
    assert r["subject_count"] == 1 and len(r["subject_keys"]) == 1
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (1, "logged")


def test_same_shape_same_fingerprint_distinct_subjects(out: pl.DataFrame) -> None:
    a, b = row(out, 0), row(out, 14)
    assert a["fingerprint"] == b["fingerprint"]
    assert a["fingerprint_id"] == b["fingerprint_id"]
    assert a["subject_keys"] != b["subject_keys"]
    assert "?" in a["fingerprint"] and ID_A not in a["fingerprint"]


def test_copy_to_stdout_sized_by_catalog(out: pl.DataFrame) -> None:
    r = row(out, 1)
    assert r["statement_kind"] == "copy" and r["is_export"]
    assert (r["export_form"], r["export_target"]) == ("copy_to", "stdout")
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (1000, "catalog")
    assert "national_id" in r["sensitive_classes"]


def test_fetch_count(out: pl.DataFrame) -> None:
    r = row(out, 2)
    assert r["statement_kind"] == "fetch" and r["fetch_count"] == 50
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (50, "limit")


def test_parameterised_limit(out: pl.DataFrame) -> None:
    r = row(out, 3)
    assert r["has_limit"] and r["limit_value"] == 30
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (30, "limit")


def test_aggregate_only(out: pl.DataFrame) -> None:
    r = row(out, 4)
    assert r["aggregate_only"] and r["has_aggregate"]
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (1, "aggregate")


def test_key_ranges_are_sized_by_their_width(out: pl.DataFrame) -> None:
    literal, bound, values, counted = (row(out, k) for k in (17, 18, 19, 20))
    assert literal["key_range_rows"] == 150
    assert (literal["rows_estimate"], literal["rows_estimate_source"]) == (150, "range")
    assert bound["key_range_rows"] == 5000  # capped by the catalog's 1,000 rows
    assert (bound["rows_estimate"], bound["rows_estimate_source"]) == (1000, "range")
    assert values["key_range_rows"] is None and values["rows_estimate"] is None
    assert counted["key_range_rows"] == 100
    assert (counted["rows_estimate"], counted["rows_estimate_source"]) == (90, "logged")


def test_in_list_lookup_counts_subjects(out: pl.DataFrame) -> None:
    r = row(out, 5)
    assert r["is_lookup"] and r["subject_count"] == 3
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (3, "lookup")
    assert r["fingerprint"].endswith("IN (?+)")


def test_mariadb_database_is_the_default_schema(out: pl.DataFrame) -> None:
    r = row(out, 6)
    assert r["tables_read"] == ["crm.customers"]
    assert r["sensitive_classes"] == ["name", "phone"]
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (80, "catalog")


def test_mariadb_without_database() -> None:
    events = conform(
        pl.DataFrame(
            {
                "source_format": ["mariadb-audit"],
                "event_kind": ["statement"],
                "statement": ["SELECT mobile FROM customers"],
                "rows_status": ["not_logged"],
            }
        )
    )
    r = enrich(events, CATALOG, id_key=KEY).row(0, named=True)
    assert r["sql_parse_ok"] and r["tables_read"] == ["crm.customers"]
    assert r["sensitive_classes"] == ["phone"]


def test_session_events_get_nulls(out: pl.DataFrame) -> None:
    r = row(out, 7)
    assert all(r[name] is None for name in ENRICHED_COLUMNS)


def test_unparsable_falls_back_to_tag_and_source_tables(out: pl.DataFrame) -> None:
    r = row(out, 8)
    assert not r["sql_parse_ok"]
    assert r["statement_kind"] == "select"
    assert r["tables_read"] == ["public.citizens"]
    r = row(out, 15)
    assert not r["sql_parse_ok"] and r["rows_estimate_source"] == "none"


def test_multi_statement_lines_get_their_statement(out: pl.DataFrame) -> None:
    first, second = row(out, 9), row(out, 10)
    assert first["aggregate_only"] and first["tables_read"] == ["public.citizens"]
    assert (first["rows_estimate"], first["rows_estimate_source"]) == (1, "aggregate")
    assert second["tables_read"] == ["public.orders"] and not second["aggregate_only"]
    assert (second["rows_estimate"], second["rows_estimate_source"]) == (5000, "catalog")
    assert first["fingerprint_id"] == second["fingerprint_id"]


def test_copy_query_rows_counted_once(out: pl.DataFrame) -> None:
    select_line, copy_line = row(out, 11), row(out, 12)
    assert select_line["export_form"] == copy_line["export_form"] == "copy_query_to"
    assert (select_line["rows_estimate"], select_line["rows_estimate_source"]) == (7, "logged")
    assert (copy_line["rows_estimate"], copy_line["rows_estimate_source"]) == (None, "none")


def test_ids_in_parameters(out: pl.DataFrame) -> None:
    r = row(out, 13)
    assert r["subject_count"] == 1
    assert r["subject_keys"] == row(out, 14)["subject_keys"]  # same ID as a literal there
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (1, "lookup")


def test_writes_are_logged_not_estimated(out: pl.DataFrame) -> None:
    r = row(out, 16)
    assert r["statement_kind"] == "update" and r["tables_written"] == ["public.citizens"]
    assert (r["rows_estimate"], r["rows_estimate_source"]) == (1, "logged")


def test_no_raw_id_in_added_columns(out: pl.DataFrame) -> None:
    added = out.select(list(ENRICHED_COLUMNS)).cast(
        {c: pl.String for c, t in ENRICHED_COLUMNS.items() if t in (pl.String,)}
    )
    dumped = str(added.to_dicts())
    for raw in (ID_A, ID_B, ID_C, ID_B[:17]):
        assert raw not in dumped


def test_keys_depend_on_the_key_only() -> None:
    events = make_events()
    a = enrich(events, CATALOG, id_key=KEY)["subject_keys"]
    b = enrich(events, CATALOG, id_key=KEY)["subject_keys"]
    c = enrich(events, CATALOG, id_key=b"another-secret-key-xyz")["subject_keys"]
    assert a.equals(b)
    assert not a.equals(c)


def test_empty_frame() -> None:
    out = enrich(empty_events(), CATALOG, id_key=KEY)
    assert out.is_empty() and out.schema == ENRICHED_SCHEMA


def test_errors() -> None:
    with pytest.raises(FeaturesError, match="statement"):
        enrich(pl.DataFrame({"user": ["a"]}), CATALOG, id_key=KEY)
    with pytest.raises(IdKeyError):
        enrich(make_events(), CATALOG, id_key=b"short")


def test_batches_equal_whole() -> None:
    events = make_events().slice(0, 9)
    whole = enrich(events, CATALOG, id_key=KEY)
    parts = pl.concat(
        [
            enrich(events.slice(0, 4), CATALOG, id_key=KEY),
            enrich(events.slice(4), CATALOG, id_key=KEY),
        ]
    )
    assert whole.equals(parts)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pgaudit-csv", "mariadb-audit"]),
            st.one_of(st.none(), st.text(max_size=80)),
            st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=20)))),
            st.sampled_from([None, "SELECT", "COPY", "FETCH", "??"]),
        ),
        max_size=8,
    )
)
def test_enrich_never_raises(rows: list[tuple[Any, ...]]) -> None:
    frame = conform(
        pl.DataFrame(
            [
                {
                    "source_format": f,
                    "event_kind": "statement",
                    "statement": s,
                    "parameters": p,
                    "command_tag": t,
                    "rows_status": "not_logged",
                }
                for f, s, p, t in rows
            ],
            schema={
                "source_format": pl.String,
                "event_kind": pl.String,
                "statement": pl.String,
                "parameters": pl.List(pl.String),
                "command_tag": pl.String,
                "rows_status": pl.String,
            },
        )
    )
    out = enrich(frame, CATALOG, id_key=KEY)
    assert out.height == frame.height and out.schema == ENRICHED_SCHEMA
