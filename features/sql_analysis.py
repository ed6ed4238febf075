"""Analyse one statement (or fingerprint): kind, tables, columns, filters, exports.

:func:`analyse_statement` is the entry point; it never raises on bad SQL. sqlglot parses the
statement in the ``postgres`` or ``mysql`` dialect; the root node must be a statement
(sqlglot is lenient: garbage may parse as a column alias), otherwise, and whenever sqlglot
fails, the keyword rules of :mod:`features.sql_rules` give a coarse analysis flagged
``parse_ok=False`` with the reason in ``parse_error``. Cursor commands, utility verbs
(``VACUUM``, ``DEALLOCATE``, ``CALL`` ... :data:`features.sql_rules.UTILITY_VERBS`) and
MariaDB's ``INTO OUTFILE`` are handled by rules before parsing.

Fingerprints can be analysed directly: ``?`` placeholders parse, and a collapsed list
``(?+)`` is read as ``(?)``. Numeric values that the fingerprint replaced (``LIMIT ?``) come
out as ``None``; :mod:`features.enrich` reads them per event.

Multi-statement strings
-----------------------
pgaudit logs the *whole* query string on the line of every statement it contains.
:func:`analyse_statements` analyses each statement; :func:`analyse_statement` picks the
``index``-th one whose kind matches ``command_tag`` (the line's tag), and without a tag
returns the union of all statements (:func:`combine`: tables and columns united, a filter
or limit counted only when every statement has one, so the union errs towards "reads
more").

Results are cached per ``(text, dialect, catalog, default_schema)`` in a bounded LRU cache
(:data:`CACHE_SIZE` entries): the analysis runs once per distinct fingerprint.

>>> a = analyse_statement("SELECT full_name, phone FROM citizens WHERE id = ? LIMIT 10")
>>> a.kind, a.tables_read, a.columns_read, a.has_where, a.limit_value
('select', ('public.citizens',), ('public.citizens.full_name', 'public.citizens.phone'), True, 10)
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import replace
from typing import Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from features.catalog import Catalog
from features.fingerprint import COLLAPSED_LIST, check_dialect
from features.sql_lineage import resolve_tables
from features.sql_rules import (
    UTILITY_VERBS,
    classify_keyword,
    cut_outfile,
    first_keyword,
    is_cursor_misc,
    kind_of_command_tag,
    parse_cursor_command,
    split_statements,
)
from features.statement_analysis import EXPORT_FORMS, StatementAnalysis, combine
from features.statement_tree import (
    STATEMENT_ROOTS,
    analysis_from_tree,
    keyword_analysis,
    qualifier,
)

__all__ = [
    "CACHE_SIZE",
    "EXPORT_FORMS",
    "MAX_PARSE_CHARS",
    "StatementAnalysis",
    "analyse_statement",
    "analyse_statements",
    "cache_info",
    "combine",
]

CACHE_SIZE: Final = 65_536
#: Longer statements are not given to sqlglot (parse time and recursion depth grow with
#: them); they get the keyword analysis.
MAX_PARSE_CHARS: Final = 200_000

_EMPTY_CATALOG: Final = Catalog()
_TOKEN_REPR: Final = re.compile(r"<Token token_type: TokenType\.(\w+).*", re.DOTALL)


class _DropExpectedWarnings(logging.Filter):
    """sqlglot warns for every statement it keeps as an opaque command and for scopes it
    cannot build on odd input; both are expected here and would flood the log."""

    _EXPECTED: Final = ("Falling back to parsing as a 'Command'", "Cannot traverse scope")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self._EXPECTED)


logging.getLogger("sqlglot").addFilter(_DropExpectedWarnings())


def analyse_statement(
    text: str,
    dialect: str = "postgres",
    *,
    catalog: Catalog | None = None,
    default_schema: str | None = None,
    command_tag: str | None = None,
    index: int | None = None,
) -> StatementAnalysis:
    """Analyse SQL text (raw or fingerprint); never raises on bad SQL.

    Parameters
    ----------
    text
        One or more statements.
    dialect
        ``postgres`` or ``mysql``.
    catalog
        Resolves table names and expands ``*``; an empty catalog when omitted.
    default_schema
        Schema of unqualified names; defaults to the catalog's for ``dialect``
        (``public`` for PostgreSQL, none for MySQL).
    command_tag, index
        For multi-statement text: pick the ``index``-th (default 0, taken modulo the
        number of matches) statement whose kind matches ``command_tag``; without a tag,
        ``index`` picks among all statements, and with neither the union is returned.

    Examples
    --------
    >>> analyse_statement("hello world this is not sql").parse_ok
    False
    >>> multi = "SELECT count(*) FROM citizens; SELECT * FROM orders"
    >>> analyse_statement(multi, command_tag="SELECT", index=1).tables_read
    ('public.orders',)
    >>> analyse_statement(multi).tables_read
    ('public.citizens', 'public.orders')
    """
    analyses = analyse_statements(text, dialect, catalog=catalog, default_schema=default_schema)
    if len(analyses) == 1:
        return analyses[0]
    if command_tag is not None:
        wanted = kind_of_command_tag(command_tag)
        matching = [a for a in analyses if a.kind == wanted]
        if matching:
            return matching[(index or 0) % len(matching)]
    elif index is not None:
        return analyses[index % len(analyses)]
    return combine(analyses)


def analyse_statements(
    text: str,
    dialect: str = "postgres",
    *,
    catalog: Catalog | None = None,
    default_schema: str | None = None,
) -> tuple[StatementAnalysis, ...]:
    """Analyse every statement of ``text`` (see :func:`analyse_statement`).

    >>> [a.kind for a in analyse_statements("SET x = 1; DELETE FROM t")]
    ['set', 'delete']
    """
    check_dialect(dialect)
    catalog = catalog if catalog is not None else _EMPTY_CATALOG
    if default_schema is None:
        default_schema = catalog.default_schema(dialect)
    return _analyse_all(text if isinstance(text, str) else "", dialect, catalog, default_schema)


def cache_info() -> functools._CacheInfo:
    """Hit/miss counters of the analysis cache."""
    return _analyse_all.cache_info()


@functools.lru_cache(maxsize=CACHE_SIZE)
def _analyse_all(
    text: str, dialect: str, catalog: Catalog, default_schema: str | None
) -> tuple[StatementAnalysis, ...]:
    parts = split_statements(text.replace(COLLAPSED_LIST, "(?)"), dialect)
    return tuple(
        replace(
            _analyse_one(part, dialect, catalog, default_schema),
            statement_index=i,
            statement_count=len(parts),
        )
        for i, part in enumerate(parts)
    )


def _analyse_one(
    text: str, dialect: str, catalog: Catalog, default_schema: str | None
) -> StatementAnalysis:
    cursor = parse_cursor_command(text)
    if cursor is not None:
        if cursor.verb == "declare" and cursor.query is not None:
            inner = _analyse_one(cursor.query, dialect, catalog, default_schema)
            return replace(inner, kind="other", cursor=cursor.cursor, is_export=False)
        kind = "fetch" if cursor.verb == "fetch" else "other"
        return StatementAnalysis(
            dialect,
            kind,
            cursor=cursor.cursor,
            fetch_count=cursor.count,
            fetch_all=cursor.fetch_all,
        )
    if is_cursor_misc(text) or first_keyword(text) in UTILITY_VERBS:
        return StatementAnalysis(dialect, "other")

    outfile = cut_outfile(text) if dialect == "mysql" else None
    sql = outfile.remainder if outfile is not None else text
    if dialect == "mysql" and classify_keyword(sql) == "insert":
        # REPLACE INTO has INSERT's syntax; sqlglot only knows the latter.
        sql = sql.lstrip()
        sql = "INSERT" + sql[7:] if sql[:7].lower() == "replace" else sql
    analysis = _parse_and_analyse(sql, dialect, catalog, default_schema, text)
    if outfile is not None:
        analysis = replace(
            analysis, is_export=True, export_form="into_outfile", export_target=outfile.target
        )
    return analysis


def _parse_and_analyse(
    sql: str, dialect: str, catalog: Catalog, default_schema: str | None, original: str
) -> StatementAnalysis:
    if len(sql) > MAX_PARSE_CHARS:
        return keyword_analysis(original, dialect, catalog, default_schema, "statement too long")
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except Exception as exc:  # any parser failure means "use the rules"
        return keyword_analysis(original, dialect, catalog, default_schema, _reason(exc))
    if isinstance(tree, exp.Subquery):
        tree = tree.unnest()
    if not isinstance(tree, STATEMENT_ROOTS):
        reason = f"not a statement (parsed as {type(tree).__name__})"
        return keyword_analysis(original, dialect, catalog, default_schema, reason)
    try:
        resolve_tables(tree, qualifier(catalog, dialect, default_schema))
        return analysis_from_tree(tree, dialect, catalog, default_schema, original)
    except Exception as exc:  # a sqlglot corner case must not stop a stream
        reason = f"analysis failed: {type(exc).__name__}"
        return keyword_analysis(original, dialect, catalog, default_schema, reason)


def _reason(exc: Exception) -> str:
    """Why parsing failed, without quoting the statement (it may hold personal data).

    >>> try:
    ...     sqlglot.parse_one("SELECT 'secret", read="postgres")
    ... except Exception as exc:
    ...     print(_reason(exc))
    cannot tokenize (unterminated string, identifier or comment?)
    """
    if isinstance(exc, ParseError) and exc.errors:
        first = exc.errors[0]
        # sqlglot describes tokens with their text, which may be a literal: keep the type.
        description = _TOKEN_REPR.sub(r"\1", str(first.get("description")))
        return f"{description} (line {first.get('line')}, col {first.get('col')})"
    if isinstance(exc, TokenError):
        return "cannot tokenize (unterminated string, identifier or comment?)"
    return type(exc).__name__
