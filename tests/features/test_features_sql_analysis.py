"""SQL analysis: projections, filters, exports, cursors, fallbacks, multi-statements."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.catalog import Catalog
from features.sql_analysis import (
    StatementAnalysis,
    analyse_statement,
    analyse_statements,
)
from features.sql_rules import STATEMENT_KINDS

CATALOG = Catalog.loads(
    """
[tables."public.citizens"]
rows = 1000
columns = ["id", "national_id", "full_name", "phone", "city"]

[tables."public.orders"]
rows = 5000
columns = ["id", "citizen_id", "amount"]

[tables."crm.customers"]
rows = 80
columns = ["id", "name", "mobile"]
"""
)
CITIZEN_COLUMNS = tuple(
    f"public.citizens.{c}" for c in ("id", "national_id", "full_name", "phone", "city")
)


def pg(sql: str, **kwargs: object) -> StatementAnalysis:
    return analyse_statement(sql, "postgres", catalog=CATALOG, **kwargs)  # type: ignore[arg-type]


def my(sql: str, **kwargs: object) -> StatementAnalysis:
    return analyse_statement(sql, "mysql", catalog=CATALOG, **kwargs)  # type: ignore[arg-type]


def test_select_star_is_expanded_from_the_catalog() -> None:
    a = pg("SELECT * FROM citizens")
    assert a.kind == "select" and a.parse_ok
    assert a.tables_read == ("public.citizens",)
    assert a.columns_read == CITIZEN_COLUMNS
    assert a.reads_whole_table


def test_star_of_unknown_table_is_kept() -> None:
    a = pg("SELECT * FROM audit.things")
    assert a.tables_read == ("audit.things",)
    assert a.columns_read == ("audit.things.*",)


def test_aliases_and_joins() -> None:
    a = pg(
        "SELECT c.full_name AS who, o.amount FROM citizens c "
        "JOIN orders o ON o.citizen_id = c.id WHERE o.amount > 10"
    )
    assert a.tables_read == ("public.citizens", "public.orders")
    assert a.columns_read == ("public.citizens.full_name", "public.orders.amount")
    assert a.has_where and a.where_columns == ("public.orders.amount",)


def test_self_join() -> None:
    a = pg("SELECT a.national_id, b.phone FROM citizens a JOIN citizens b ON a.id = b.id")
    assert a.tables_read == ("public.citizens",)
    assert a.columns_read == ("public.citizens.national_id", "public.citizens.phone")


def test_unqualified_column_of_a_join_resolved_by_catalog() -> None:
    a = pg("SELECT amount, full_name FROM citizens JOIN orders ON citizen_id = citizens.id")
    assert a.columns_read == ("public.orders.amount", "public.citizens.full_name")


def test_columns_traced_through_subqueries_and_ctes() -> None:
    a = pg("WITH x AS (SELECT national_id AS n FROM citizens) SELECT n FROM x")
    assert a.columns_read == ("public.citizens.national_id",)
    a = pg("SELECT s.national_id FROM (SELECT * FROM citizens) s")
    assert a.columns_read == ("public.citizens.national_id",)
    a = pg("SELECT (SELECT phone FROM citizens c WHERE c.id = o.citizen_id) FROM orders o")
    assert a.columns_read == ("public.citizens.phone",)


def test_union_reads_both_branches() -> None:
    a = pg("SELECT phone FROM citizens UNION ALL SELECT mobile FROM crm.customers LIMIT 5")
    assert a.columns_read == ("public.citizens.phone", "crm.customers.mobile")
    assert a.has_limit and a.limit_value == 5


@pytest.mark.parametrize(
    ("sql", "limit", "offset"),
    [
        ("SELECT * FROM citizens LIMIT 100 OFFSET 200", 100, 200),
        ("SELECT * FROM citizens OFFSET 5", None, 5),
        ("SELECT * FROM citizens FETCH FIRST 10 ROWS ONLY", 10, None),
        ("SELECT * FROM citizens LIMIT ALL", None, None),
    ],
)
def test_limit_offset(sql: str, limit: int | None, offset: int | None) -> None:
    a = pg(sql)
    assert (a.has_limit, a.limit_value) == (limit is not None, limit)
    assert (a.has_offset, a.offset_value) == (offset is not None, offset)


def test_placeholder_limit_has_no_value() -> None:
    a = pg("SELECT * FROM citizens LIMIT ? OFFSET $2")
    assert a.has_limit and a.limit_value is None
    assert a.has_offset and a.offset_value is None
    assert not a.reads_whole_table


def test_mysql_limit_offset_comma() -> None:
    a = my("SELECT * FROM customers LIMIT 10, 20", default_schema="crm")
    assert (a.limit_value, a.offset_value) == (20, 10)
    assert a.tables_read == ("crm.customers",)


def test_aggregates() -> None:
    a = pg("SELECT city, count(*) FROM citizens GROUP BY city")
    assert a.has_group_by and a.has_aggregate and not a.aggregate_only
    a = pg("SELECT count(*), max(id) FROM citizens")
    assert a.has_aggregate and a.aggregate_only and not a.reads_whole_table
    a = pg("SELECT string_agg(national_id, ',') FROM citizens")
    assert a.has_aggregate and not a.aggregate_only and a.reads_whole_table
    a = pg("SELECT count(*) OVER (), national_id FROM citizens")
    assert not a.has_aggregate


def test_where_without_columns_does_not_filter() -> None:
    assert not pg("SELECT * FROM citizens WHERE 1 = 1").has_where
    assert pg("SELECT * FROM citizens WHERE id > 0").has_where


def test_lookups() -> None:
    assert pg("SELECT * FROM citizens WHERE national_id = ?").lookup_columns == (
        "public.citizens.national_id",
    )
    assert pg("SELECT * FROM citizens WHERE national_id IN (?+) AND city = 'x'").lookup_columns == (
        "public.citizens.national_id",
        "public.citizens.city",
    )
    assert pg("SELECT * FROM citizens WHERE id > ?").lookup_columns == ()


def test_copy_table_to_stdout() -> None:
    a = pg("COPY citizens TO STDOUT")
    assert a.kind == "copy" and a.is_export
    assert (a.export_form, a.export_target) == ("copy_to", "stdout")
    assert a.tables_read == ("public.citizens",)
    assert a.columns_read == CITIZEN_COLUMNS
    assert a.reads_whole_table


def test_copy_columns_to_file_and_program() -> None:
    a = pg("COPY public.citizens (id, national_id) TO '/tmp/x.csv' WITH CSV")
    assert a.columns_read == ("public.citizens.id", "public.citizens.national_id")
    assert a.export_target == "file"
    assert pg("COPY citizens TO PROGRAM 'gzip > /tmp/x.gz'").export_target == "program"


def test_copy_query_to_stdout() -> None:
    a = pg("COPY (SELECT national_id FROM citizens WHERE city = 'x') TO STDOUT WITH CSV")
    assert a.kind == "copy" and a.is_export and a.export_form == "copy_query_to"
    assert a.columns_read == ("public.citizens.national_id",)
    assert a.has_where


def test_copy_from_is_not_an_export() -> None:
    a = pg("COPY citizens FROM STDIN")
    assert a.kind == "copy" and not a.is_export
    assert a.tables_written == ("public.citizens",) and a.tables_read == ()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM customers INTO OUTFILE '/tmp/x.csv'",
        "SELECT id, mobile INTO OUTFILE '/tmp/x.csv' FIELDS TERMINATED BY ',' "
        "OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' FROM customers",
        "SELECT * FROM customers INTO DUMPFILE ?",
    ],
)
def test_mysql_into_outfile(sql: str) -> None:
    a = my(sql, default_schema="crm")
    assert a.kind == "select" and a.is_export and a.export_form == "into_outfile"
    assert a.tables_read == ("crm.customers",)
    assert "crm.customers.mobile" in a.columns_read


def test_fetch() -> None:
    a = pg("FETCH 50 FROM c")
    assert (a.kind, a.fetch_count, a.cursor, a.parse_ok) == ("fetch", 50, "c", True)
    assert pg("FETCH FORWARD ? FROM c").fetch_count is None
    assert pg("FETCH ALL IN c").fetch_all
    assert pg("FETCH NEXT FROM c").fetch_count == 1
    assert pg("MOVE 10 IN c").kind == "other"


def test_declare_cursor_reports_the_query() -> None:
    a = pg("DECLARE c CURSOR WITH HOLD FOR SELECT national_id FROM citizens")
    assert a.kind == "other" and a.cursor == "c"
    assert a.columns_read == ("public.citizens.national_id",)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO orders (id) VALUES (?)", "insert"),
        ("UPDATE citizens SET phone = ? WHERE id = ?", "update"),
        ("DELETE FROM citizens WHERE id = ?", "delete"),
        ("CREATE TABLE x (a int)", "ddl"),
        ("DROP TABLE x", "ddl"),
        ("TRUNCATE citizens", "ddl"),
        ("SET search_path = public", "set"),
        ("BEGIN", "other"),
        ("VACUUM citizens", "other"),
        ("DEALLOCATE pgclassstmt", "other"),
        ("ANALYZE citizens", "other"),
        ("CALL refresh(?)", "other"),
    ],
)
def test_kinds(sql: str, kind: str) -> None:
    a = pg(sql)
    assert a.kind == kind and a.parse_ok


def test_writes_and_returning() -> None:
    a = pg("INSERT INTO stage SELECT national_id FROM citizens")
    assert a.tables_written == ("public.stage",) and a.tables_read == ("public.citizens",)
    assert a.columns_read == ("public.citizens.national_id",)
    a = pg("DELETE FROM citizens WHERE id = ? RETURNING *")
    assert a.columns_read == CITIZEN_COLUMNS and a.has_where
    a = pg("CREATE TABLE loot AS SELECT * FROM citizens")
    assert a.kind == "ddl" and a.tables_written == ("public.loot",)
    assert a.columns_read == CITIZEN_COLUMNS


def test_mysql_replace_and_default_schema() -> None:
    a = my("REPLACE INTO customers (id) VALUES (?)", default_schema="crm")
    assert a.kind == "insert" and a.tables_written == ("crm.customers",)
    assert my("SELECT * FROM orders", default_schema="shop").tables_read == ("shop.orders",)


@pytest.mark.parametrize(
    "garbage",
    [
        "hello world this is not sql",
        "<previously logged>",
        "SELECT FROM WHERE (((",
        "",
        "   ",
        ";;;",
        "'unterminated",
        "\x00\x01",
        "SELECT * FROM t WHERE x = 'trunc",
    ],
)
def test_garbage_does_not_raise(garbage: str) -> None:
    a = pg(garbage)
    assert a.kind in STATEMENT_KINDS
    assert isinstance(a.parse_ok, bool)


def test_garbage_is_flagged() -> None:
    a = pg("hello world this is not sql")
    assert not a.parse_ok and a.parse_error
    a = pg("<previously logged>")
    assert not a.parse_ok and a.kind == "other"


def test_truncated_statement_falls_back_to_keywords() -> None:
    a = my(
        "SELECT id, mobile FROM customers JOIN orders ON x = y WHERE name = 'Zha",
        default_schema="crm",
    )
    assert not a.parse_ok
    assert a.kind == "select" and a.has_where
    assert a.tables_read == ("crm.customers", "crm.orders")


def test_multi_statement_pick_and_union() -> None:
    text = "SELECT count(*) FROM citizens; SELECT * FROM orders; UPDATE orders SET amount = 1"
    parts = analyse_statements(text, catalog=CATALOG)
    assert [p.kind for p in parts] == ["select", "select", "update"]
    assert [p.statement_index for p in parts] == [0, 1, 2]
    assert all(p.statement_count == 3 for p in parts)
    assert pg(text, command_tag="SELECT").aggregate_only
    assert pg(text, command_tag="SELECT", index=1).tables_read == ("public.orders",)
    assert pg(text, command_tag="SELECT", index=3).tables_read == ("public.orders",)
    assert pg(text, command_tag="UPDATE").kind == "update"
    union = pg(text)
    assert union.tables_read == ("public.citizens", "public.orders")
    assert not union.aggregate_only and union.statement_index is None
    # no statement of that kind: the union
    assert pg(text, command_tag="DELETE").tables_read == union.tables_read


def test_semicolon_inside_string_does_not_split() -> None:
    assert len(analyse_statements("SELECT ';' FROM t; SELECT 2")) == 2
    assert len(analyse_statements("SELECT 'a;b'")) == 1


def test_fingerprint_text_is_analysable() -> None:
    a = pg("SELECT * FROM citizens WHERE id IN (?+) LIMIT ?")
    assert a.parse_ok and a.has_limit and a.lookup_columns == ("public.citizens.id",)


def test_results_are_cached() -> None:
    assert pg("SELECT 12345 FROM citizens") is pg("SELECT 12345 FROM citizens")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.lists(
            st.sampled_from(
                [
                    "SELECT",
                    "*",
                    "FROM",
                    "t",
                    "WHERE",
                    "(",
                    ")",
                    "'",
                    '"',
                    "`",
                    ";",
                    "$1",
                    "?",
                    "(?+)",
                    "LIMIT",
                    "COPY",
                    "TO",
                    "INTO",
                    "OUTFILE",
                    "FETCH",
                    "ALL",
                    "--",
                    "/*",
                    "*/",
                    "$$",
                    "WITH",
                    "x",
                    "AS",
                    "UNION",
                    "JOIN",
                    "ON",
                    "=",
                    ",",
                    "1",
                    "E'",
                    "\\",
                ]
            ),
            max_size=30,
        ).map(" ".join),
    ),
    dialect=st.sampled_from(["postgres", "mysql"]),
    tag=st.sampled_from([None, "SELECT", "COPY", "FETCH"]),
)
def test_never_raises(text: str, dialect: str, tag: str | None) -> None:
    a = analyse_statement(text, dialect, catalog=CATALOG, command_tag=tag)
    assert a.kind in STATEMENT_KINDS
