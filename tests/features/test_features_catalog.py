"""Catalog loading, validation errors, name resolution and column classing."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.catalog import Catalog, TableInfo
from features.column_classes import HEURISTICS
from features.exceptions import CatalogError, FeaturesError
from paths import ROOT

EXAMPLE = ROOT / "features" / "data" / "catalog.example.toml"


def test_example_catalog_loads() -> None:
    cat = Catalog.load(EXAMPLE)
    assert cat.rows_of("public.citizens") == 1_200_000
    assert cat.columns_of("public.citizens")[:2] == ("id", "national_id")
    assert "vehicle_plate" in cat.classes
    assert cat.column_class("public.vehicles", "plate") == "vehicle_plate"
    assert cat.column_class("public.citizens", "remark") is None
    assert cat.column_class("public.citizens", "full_name") == "name"


@pytest.mark.parametrize(
    ("toml", "offender"),
    [
        ("[tables.citizens]\nrows = 1", 'tables."citizens"'),
        ('[tables."a.b.c"]', 'tables."a.b.c"'),
        ('[tables."public.t"]\nrows = -5', 'tables."public.t".rows'),
        ('[tables."public.t"]\nrows = "many"', 'tables."public.t".rows'),
        ('[tables."public.t"]\nrows = true', 'tables."public.t".rows'),
        ('[tables."public.t"]\nrowz = 1', 'tables."public.t".rowz'),
        ('[tables."public.t"]\ncolumns = "a,b"', 'tables."public.t".columns'),
        ('[tables."public.t"]\ncolumns = ["a", 3]', 'tables."public.t".columns[1]'),
        ('[tables."public.t"]\ncolumns = ["a", "A"]', 'tables."public.t".columns[1]'),
        ('[tables."public.t"]\nsensitive = { a = "secretish" }', 'tables."public.t".sensitive.a'),
        (
            '[tables."public.t"]\ncolumns = ["a"]\nsensitive = { b = "phone" }',
            'tables."public.t".sensitive.b',
        ),
        ('[tables."public.t"]\n[tables."PUBLIC.T"]', 'tables."PUBLIC.T"'),
        ("[defaults]\npostgres_schema = 3", "defaults.postgres_schema"),
        ("[defaults]\nsearch_path = 'x'", "defaults.search_path"),
        ("[classes]\nNot-A-Name = 'x'", "classes.Not-A-Name"),
        ("[classes]\nplate = '(unclosed'", "classes.plate"),
        ("[heuristics]\nbuiltin = 'yes'", "heuristics.builtin"),
        ("[extra]\na = 1", "extra"),
        ("tables = 5", "tables"),
    ],
)
def test_validation_errors_name_the_offending_key(toml: str, offender: str) -> None:
    with pytest.raises(CatalogError) as info:
        Catalog.loads(toml, source="cat.toml")
    assert str(info.value).startswith(f"cat.toml: {offender}:")


def test_errors_are_features_errors_and_chain_foreign_ones(tmp_path: Path) -> None:
    with pytest.raises(FeaturesError) as info:
        Catalog.loads("not = [valid")
    assert info.value.__cause__ is not None
    with pytest.raises(CatalogError, match="cannot read") as info:
        Catalog.load(tmp_path / "missing.toml")
    assert isinstance(info.value.__cause__, OSError)


def test_extra_class_usable_in_tables() -> None:
    cat = Catalog.loads(
        '[classes]\nplate = "plate_?no"\n[tables."public.v"]\nsensitive = { reg = "plate" }'
    )
    assert cat.column_class("public.v", "reg") == "plate"
    assert cat.column_class("public.other", "car_plate_no") == "plate"


def test_builtin_heuristics_can_be_disabled() -> None:
    cat = Catalog.loads("[heuristics]\nbuiltin = false")
    assert cat.column_class(None, "national_id") is None


def test_resolution_is_case_insensitive_and_tolerates_unqualified_names() -> None:
    cat = Catalog(
        tables=(
            TableInfo("public.citizens"),
            TableInfo("crm.customers"),
            TableInfo("a.dup"),
            TableInfo("b.dup"),
        )
    )
    assert cat.resolve_table("Citizens", default_schema="public") == "public.citizens"
    assert cat.resolve_table("customers", default_schema="public") == "crm.customers"
    assert cat.resolve_table("CRM.Customers") == "crm.customers"
    assert cat.resolve_table("mydb.public.citizens") == "public.citizens"
    assert cat.resolve_table("dup") is None  # ambiguous
    assert cat.resolve_table("dup", default_schema="b") == "b.dup"
    assert cat.qualify_table("unknown", default_schema="public") == "public.unknown"
    assert cat.qualify_table("unknown") == "unknown"


def test_catalog_overrides_heuristics() -> None:
    cat = Catalog.loads('[tables."public.t"]\nsensitive = { phone = "none", code = "passport" }')
    assert cat.column_class("public.t", "phone") is None
    assert cat.column_class("public.t", "code") == "passport"
    assert cat.column_class("public.other", "phone") == "phone"


def test_catalog_is_hashable_and_equal_by_content() -> None:
    a = Catalog.loads('[tables."public.t"]\nrows = 3')
    b = Catalog.loads('[tables."PUBLIC.T"]\nrows = 3')
    assert a == b and hash(a) == hash(b)


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("national_id", "national_id"),
        ("id_card", "national_id"),
        ("id_no", "national_id"),
        ("sfz", "national_id"),
        ("ssn", "national_id"),
        ("citizen_id_number", "national_id"),
        ("idCardNo", "national_id"),
        ("phone", "phone"),
        ("mobile", "phone"),
        ("tel", "phone"),
        ("customer_phone", "phone"),
        ("address", "address"),
        ("addr", "address"),
        ("home_address", "address"),
        ("full_name", "name"),
        ("name", "name"),
        ("surname", "name"),
        ("email", "email"),
        ("email_address", "email"),
        ("birth", "birth_date"),
        ("dob", "birth_date"),
        ("date_of_birth", "birth_date"),
        ("passport", "passport"),
        ("passport_no", "passport"),
        ("bank_card_no", "bank_account"),
        ("id", None),
        ("hotel", None),
        ("telemetry", None),
        ("table_name", None),
        ("username", None),
        ("ip_address", None),
        ("client_addr", None),
        ("created_at", None),
    ],
)
def test_heuristics(column: str, expected: str | None) -> None:
    assert HEURISTICS.classify(column) == expected
