"""One planned (PostgreSQL-flavoured) statement -> what a MariaDB client would send.

The plan is written once, in PostgreSQL's dialect with psycopg ``%s`` placeholders; the
MariaDB runner translates each statement when it sends it, so plan and scenario code stay
one source.  The translation is deliberately small and explicit:

- ``COPY (SELECT ...) TO STDOUT`` -> the ``SELECT`` (what ``mysql -e "..." > file`` sends);
- ``COPY t [(cols)] TO STDOUT`` (pg_dump) -> mysqldump's ``SELECT /*!40001 SQL_NO_CACHE */``;
- ``COPY t (cols) FROM STDIN`` with rows -> one multi-row ``INSERT``;
- ``date_part('year', x)`` -> ``YEAR(x)`` (also month, day, hour, minute, decade);
- ``VACUUM (ANALYZE) t`` -> ``ANALYZE TABLE t``; the ``pg_stat_*`` views the DBA reads ->
  ``information_schema``; pg_dump's session set-up -> mysqldump's; ``SET TRANSACTION``
  (inside a transaction in PostgreSQL) -> ``SET SESSION TRANSACTION``; ``public.`` dropped.

Anything else PostgreSQL-only (casts ``::``, ``ILIKE``, ``$1``, ``||``, other catalogs and
functions ...) raises :class:`~.errors.DialectError` naming the construct, so a new template
cannot silently produce a different workload on MariaDB.

Parameters stay ``%s``: PyMySQL interpolates them client-side, so a MariaDB log shows
literals for every user, whether their client "binds" or not (server_audit also logs a
server-side prepared statement's execution with the values substituted): in a MariaDB log
bound and literal parameters are indistinguishable.

>>> to_mysql("COPY (SELECT full_name FROM citizens) TO STDOUT", copy="out")
('SELECT full_name FROM citizens', None)
>>> to_mysql("SELECT date_part('year', birth_date) AS year, count(*) FROM citizens GROUP BY 1")
('SELECT YEAR(birth_date) AS year, count(*) FROM citizens GROUP BY 1', None)
>>> logged_text("SELECT * FROM citizens WHERE full_name = %s", ("O'Hara",))
"SELECT * FROM citizens WHERE full_name = 'O\\\\'Hara'"
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import DialectError

if TYPE_CHECKING:
    from .sessions import Statement

Params = tuple[object, ...] | None

#: whole statements with a MariaDB counterpart (pg_dump's set-up, the DBA's catalog reads)
STATEMENTS: dict[str, str] = {
    "SET statement_timeout = 0": "SET SESSION max_statement_time = 0",
    "SET extra_float_digits TO 3": "/*!40103 SET TIME_ZONE='+00:00' */",
    "SELECT pid, usename, client_addr, state, query_start FROM pg_stat_activity"
    " WHERE datname = current_database()": "SELECT ID, USER, HOST, COMMAND, TIME"
    " FROM information_schema.PROCESSLIST WHERE DB = DATABASE()",
    "SELECT relname, n_live_tup, n_dead_tup, last_autovacuum FROM pg_stat_user_tables"
    " ORDER BY n_live_tup DESC": "SELECT TABLE_NAME, TABLE_ROWS, DATA_FREE, UPDATE_TIME"
    " FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_ROWS DESC",
}
#: ``date_part`` fields -> a MariaDB expression of ``{}``
DATE_PARTS: dict[str, str] = {
    "year": "YEAR({})",
    "month": "MONTH({})",
    "day": "DAYOFMONTH({})",
    "hour": "HOUR({})",
    "minute": "MINUTE({})",
    "decade": "FLOOR(YEAR({}) / 10)",
}
_F = re.IGNORECASE | re.DOTALL
_COPY_QUERY = re.compile(r"COPY\s*\((?P<query>.*)\)\s*TO\s+STDOUT\s*;?", _F)
_COPY_TABLE = re.compile(
    r"COPY\s+(?P<table>[\w.]+)\s*(?:\((?P<cols>[^()]*)\))?\s*"
    r"(?P<dir>TO\s+STDOUT|FROM\s+STDIN)\s*;?",
    _F,
)
_VACUUM = re.compile(r"VACUUM\s*(?P<opts>\([^()]*\)|ANALYZE)?\s*(?P<table>[\w.]+)\s*;?", _F)
_SET_TRANSACTION = re.compile(r"SET\s+TRANSACTION\s+(?P<rest>.*)", _F)
_DATE_PART = re.compile(r"\bdate_part\s*\(\s*'(?P<field>\w+)'\s*,", re.IGNORECASE)
_PUBLIC = re.compile(r"\bpublic\.(?=\w)", re.IGNORECASE)
_STRING = re.compile(r"'(?:[^'\\]|''|\\.)*'", re.DOTALL)
#: PostgreSQL-only constructs that must not reach MariaDB (checked outside string literals)
PG_ONLY: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("a :: cast", r"::"),
        ("ILIKE", r"\bILIKE\b"),
        ("a $n parameter", r"\$\d"),
        ("|| (string concatenation in PostgreSQL, OR in MariaDB)", r"\|\|"),
        ("a pg_ catalog or function", r"\bpg_\w+"),
        ("current_database()", r"\bcurrent_database\s*\("),
        ("date_part()", r"\bdate_part\s*\("),
        ("date_trunc()", r"\bdate_trunc\s*\("),
        ("to_char()", r"\bto_char\s*\("),
        ("generate_series()", r"\bgenerate_series\b"),
        ("COPY", r"^\s*COPY\b"),
        ("VACUUM", r"^\s*VACUUM\b"),
        ("STDIN/STDOUT", r"\bSTD(?:IN|OUT)\b"),
        ("RETURNING", r"\bRETURNING\b"),
        ("DISTINCT ON", r"\bDISTINCT\s+ON\b"),
        ("an aggregate FILTER", r"\bFILTER\s*\(\s*WHERE\b"),
        ("NULLS FIRST/LAST", r"\bNULLS\s+(?:FIRST|LAST)\b"),
        ("LATERAL", r"\bLATERAL\b"),
        ("an E'' string", r"\bE'"),
        ("an INTERVAL '...' literal", r"\bINTERVAL\s+'"),
        ("SET ... TO", r"^\s*SET\s+\w+\s+TO\b"),
        ("a PostgreSQL setting", r"\b(?:statement_timeout|extra_float_digits|search_path)\b"),
        ("a serial column", r"\b(?:big)?serial\b"),
    )
)


def _quote(name: str) -> str:
    """Backquote an identifier, as mysqldump does.

    >>> _quote("citizens")
    '`citizens`'
    """
    return "`" + name.replace("`", "``") + "`"


def _table(name: str) -> str:
    """A table name without PostgreSQL's default schema (the session database holds it)."""
    return _PUBLIC.sub("", name)


def sql_literal(value: object) -> str:
    """A MariaDB literal of a plan value, escaped as PyMySQL escapes a string.

    >>> sql_literal("O'Hara"), sql_literal(7), sql_literal(dt.date(2024, 3, 4)), sql_literal(None)
    ("'O\\\\'Hara'", '7', "'2024-03-04'", 'NULL')
    """
    from pymysql.converters import escape_item

    if isinstance(value, bool):
        raise DialectError("no booleans in the plan")
    if isinstance(value, (str, int, float, dt.date)) or value is None:
        return str(escape_item(value, "utf8mb4"))
    raise DialectError(f"no MariaDB literal for a {type(value).__name__}: {value!r}")


def _date_parts(sql: str) -> str:
    """``date_part('f', expr)`` -> the MariaDB function of ``f`` (nested parentheses kept).

    >>> _date_parts("SELECT date_part('decade', max(c.birth_date)) AS d")
    'SELECT FLOOR(YEAR(max(c.birth_date)) / 10) AS d'
    """
    while (m := _DATE_PART.search(sql)) is not None:
        field = m.group("field").lower()
        if field not in DATE_PARTS:
            raise DialectError(f"date_part({field!r}, ...) has no MariaDB translation: {sql}")
        depth, pos = 1, m.end()
        while depth:
            if pos >= len(sql):
                raise DialectError(f"unbalanced parentheses in date_part(...): {sql}")
            depth += {"(": 1, ")": -1}.get(sql[pos], 0)
            pos += 1
        arg = sql[m.end() : pos - 1].strip()
        sql = sql[: m.start()] + DATE_PARTS[field].format(arg) + sql[pos:]
    return sql


def _insert(table: str, cols: str | None, rows: Sequence[Sequence[object]]) -> str:
    """The multi-row INSERT that loads what ``COPY ... FROM STDIN`` would have."""
    if not rows:
        raise DialectError(f"COPY {table} FROM STDIN without rows has no INSERT form")
    names = f" ({cols.strip()})" if cols else ""
    values = ", ".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in rows)
    return f"INSERT INTO {_table(table)}{names} VALUES {values}"


def _statement(sql: str, copy: str | None, rows: Sequence[Sequence[object]]) -> str:
    text = sql.strip()
    if text in STATEMENTS:
        return STATEMENTS[text]
    if m := _COPY_QUERY.fullmatch(text):
        return _statement(m.group("query"), None, ())
    if m := _COPY_TABLE.fullmatch(text):
        cols = m.group("cols")
        if m.group("dir").upper().startswith("FROM"):
            if copy != "in":
                raise DialectError(f"COPY FROM STDIN without rows to feed: {sql}")
            return _insert(m.group("table"), cols, rows)
        listed = ", ".join(_quote(c.strip()) for c in cols.split(",")) if cols else "*"
        table = _quote(_table(m.group("table")))
        return f"SELECT /*!40001 SQL_NO_CACHE */ {listed} FROM {table}"
    if m := _VACUUM.fullmatch(text):
        opts = (m.group("opts") or "").upper()
        verb = "ANALYZE" if "ANALYZE" in opts else "OPTIMIZE"
        return f"{verb} TABLE {_table(m.group('table'))}"
    if m := _SET_TRANSACTION.fullmatch(text):
        # PostgreSQL sets the current transaction after BEGIN; MariaDB refuses that (1568),
        # so the session default is set, as mysqldump does before START TRANSACTION
        return f"SET SESSION TRANSACTION {m.group('rest')}"
    return _PUBLIC.sub("", _date_parts(text))


def check_mysql(sql: str) -> None:
    """Raise :class:`DialectError` if ``sql`` still holds a PostgreSQL-only construct.

    >>> check_mysql("SELECT id::text FROM citizens")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    detector.lab.simulation.errors.DialectError: PostgreSQL-only a :: cast left in: ...
    """
    code = _STRING.sub("''", sql)
    for name, pattern in PG_ONLY:
        if pattern.search(code):
            raise DialectError(f"PostgreSQL-only {name} left in: {sql}")


def to_mysql(
    sql: str,
    params: Params = None,
    copy: str | None = None,
    rows: Sequence[Sequence[object]] = (),
) -> tuple[str, Params]:
    """``(sql, params)`` as a MariaDB client sends it (placeholders stay ``%s``).

    Parameters
    ----------
    sql, params, copy, rows
        A planned statement's fields (:class:`~.sessions.Statement`).

    Returns
    -------
    tuple
        The MariaDB text and the same parameters.

    Raises
    ------
    DialectError
        ``sql`` holds a PostgreSQL-only construct with no translation here.

    Examples
    --------
    >>> to_mysql("COPY public.hotel_stays (id, hotel) TO stdout;", copy="out")
    ('SELECT /*!40001 SQL_NO_CACHE */ `id`, `hotel` FROM `hotel_stays`', None)
    >>> to_mysql("COPY hotel_stays (citizen_id, nights) FROM STDIN", copy="in", rows=[(1, 2)])
    ('INSERT INTO hotel_stays (citizen_id, nights) VALUES (1, 2)', None)
    >>> to_mysql("VACUUM (ANALYZE) travel_records")
    ('ANALYZE TABLE travel_records', None)
    >>> to_mysql("SELECT name FROM citizens WHERE name ILIKE %s", ("wang%",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    detector.lab.simulation.errors.DialectError: PostgreSQL-only ILIKE left in: SELECT name FROM ...
    """
    out = _statement(sql, copy, rows)
    check_mysql(out)
    # PyMySQL formats the text with %: only the placeholders may hold a percent sign
    if params is not None and not out.count("%") == out.count("%s") == len(params):
        raise DialectError(f"{len(params)} parameters for the placeholders of: {out}")
    return out, params


def translate(st: Statement) -> tuple[str, Params]:
    """:func:`to_mysql` of a planned statement."""
    return to_mysql(st.sql, st.params, st.copy, st.rows)


def logged_text(sql: str, params: Params) -> str:
    """The statement text server_audit logs (after unescaping): parameters interpolated."""
    if params is None:
        return sql
    return sql % tuple(sql_literal(p) for p in params)


def logged_sql(st: Statement) -> str:
    """What a MariaDB log shows for a planned statement (compare ``Statement.logged_sql``).

    >>> from .sessions import Statement
    >>> logged_sql(Statement(0, "SELECT 1 FROM citizens WHERE id BETWEEN %s AND %s", (3, 9)))
    'SELECT 1 FROM citizens WHERE id BETWEEN 3 AND 9'
    """
    return logged_text(*translate(st))
