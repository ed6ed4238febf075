"""The AUDIT payload parser on every record of pgaudit's own regression output."""

from __future__ import annotations

import re

import polars as pl

from corpus import CORPUS
from streams.pg.payload import parse_audit, split_parameters

REGRESS = CORPUS / "pgaudit" / "pgaudit-regress-expected.txt"


def _records() -> list[str]:
    """Split the client-side output into records (a record continues until quotes balance)."""
    records: list[str] = []
    for line in REGRESS.read_text().splitlines():
        m = re.match(r"^(?:NOTICE|WARNING):  (AUDIT: .*)$", line)
        if m and (not records or records[-1].count('"') % 2 == 0):
            records.append(m.group(1))
        else:
            records[-1] += "\n" + line
    return records


def _parsed() -> pl.DataFrame:
    frame = pl.DataFrame({"m": _records()})
    return parse_audit(frame, "m")


def test_every_regression_record_parses() -> None:
    parsed = _parsed()
    assert parsed.height == 415
    bad = parsed.filter(pl.col("audit_type").is_null())["m"].to_list()
    assert bad == [], f"unparsed payloads: {bad[:3]}"


def test_multiline_quoted_statement_is_unquoted() -> None:
    parsed = _parsed()
    grant = parsed.filter(pl.col("statement").str.starts_with("GRANT SELECT, INSERT, UPDATE"))
    assert grant["statement"][0] == (
        "GRANT SELECT, INSERT, UPDATE, DELETE\n   ON test2\n   TO regress_user2, regress_user1"
    )
    assert grant["object_type"][0] == "TABLE"


def test_rows_field_present_only_with_log_rows() -> None:
    parsed = _parsed()
    with_rows = parsed.filter(pl.col("rows").is_not_null())
    # log_rows is switched on near the end of the regression run only.
    assert 0 < with_rows.height < parsed.height
    insert = with_rows.filter(
        pl.col("statement") == "INSERT INTO t VALUES (3, 'all, -misc, misc_set')"
    )
    assert insert["rows"].to_list() == [1]
    assert insert["parameter"].to_list() == ["<none>"]
    # OBJECT,1,1,READ,SELECT,TABLE,public.account,<not logged>,<not logged>,3
    obj = with_rows.filter(
        (pl.col("audit_type") == "OBJECT")
        & (pl.col("object_name") == "public.account")
        & (pl.col("statement") == "<not logged>")
    )
    assert obj["rows"].to_list() == [3]


def test_previously_logged_and_object_lines() -> None:
    parsed = _parsed()
    prev = parsed.filter(pl.col("statement") == "<previously logged>")
    assert prev.height > 10
    assert set(prev["audit_type"]) == {"OBJECT", "SESSION"} or set(prev["audit_type"]) == {"OBJECT"}


def test_quoted_parameters_are_split() -> None:
    parsed = _parsed()
    params = parsed.filter(
        ~pl.col("parameter").is_in(["<none>", "<not logged>", "<previously logged>"])
    )
    assert params.height > 0
    lists = split_parameters(params["parameter"]).to_list()
    assert all(isinstance(x, list) and x for x in lists)
