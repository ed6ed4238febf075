"""Keyword rules: what we can tell about a statement without (or before) a full parse.

sqlglot cannot parse everything audit logs contain: cursor commands (``FETCH``, ``MOVE``,
``DECLARE ... CURSOR``), MariaDB's ``SELECT ... INTO OUTFILE``, statements cut at
``server_audit_query_log_limit``, and plain garbage (which it may even accept as a column
alias). These rules handle the statements sqlglot does not support, and give a coarse
analysis of the rest when parsing fails. They run once per distinct fingerprint in Python.

>>> classify_keyword("  with x as (select 1) delete from t")
'delete'
>>> kind_of_command_tag("CREATE TABLE AS"), kind_of_command_tag("SELECT")
('ddl', 'select')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import sqlglot
from sqlglot.tokens import TokenType

from features.fingerprint import first_pass_regex

STATEMENT_KINDS: Final = (
    "select", "insert", "update", "delete", "copy", "fetch", "ddl", "set", "other",
)  # fmt: skip

_FIRST_WORD: Final = re.compile(r"\s*\(*\s*([A-Za-z]+)")
#: Statement kind of each leading keyword (anything else is ``other``).
KEYWORD_KINDS: Final = {
    "select": "select", "table": "select", "values": "select",
    "insert": "insert", "replace": "insert", "update": "update", "delete": "delete",
    "copy": "copy", "fetch": "fetch",
    "create": "ddl", "alter": "ddl", "drop": "ddl", "truncate": "ddl", "rename": "ddl",
    "comment": "ddl", "grant": "ddl", "revoke": "ddl",
    "set": "set", "reset": "set",
}  # fmt: skip
# After WITH, the main verb decides the kind; a CTE body is always a SELECT.
_WITH_VERB: Final = re.compile(
    r"(?is)\)\s*(select|insert|update|delete)\b(?!.*\)\s*(?:select|insert|update|delete)\b)"
)

_NAME: Final = r'(?:[A-Za-z_][\w$]*|"(?:[^"]|"")+"|`(?:[^`]|``)+`)'
_QUALIFIED: Final = rf"{_NAME}(?:\s*\.\s*{_NAME}){{0,2}}"
_READ_TABLE: Final = re.compile(rf"(?i)\b(?:from|join)\s+(?:only\s+)?({_QUALIFIED})")
_WRITE_TABLE: Final = re.compile(
    rf"(?i)^\s*(?:insert\s+(?:ignore\s+)?into|replace\s+into|update|delete\s+from"
    rf"|copy|truncate(?:\s+table)?)\s+(?:only\s+)?({_QUALIFIED})"
)
_NOT_TABLES: Final = frozenset({"select", "lateral", "unnest", "generate_series", "dual"})

_OUTFILE: Final = re.compile(
    r"""(?isx)\binto\s+(outfile|dumpfile)\s+(?:'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|\?)
    (?:\s+(?:character\s+set\s+\w+|fields|columns|lines|optionally|enclosed\s+by|escaped\s+by
           |terminated\s+by|starting\s+by)
       |\s*(?:'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|\?))*"""
)
_COPY_TO: Final = re.compile(r"(?is)^\s*copy\s*(\()?.*\bto\s+(stdout|program|\S)")
_FETCH: Final = re.compile(
    r"""(?ix)^\s*(fetch|move)
    (?:\s+(?:(?P<one>next|prior|first|last)
            |(?:absolute|relative)\s+(?:[-+]?\d+|\?)
            |(?P<dir>forward|backward)(?:\s+(?P<dn>\d+|all|\?))?
            |(?P<all>all)
            |(?P<n>[-+]?\d+|\?)))?
    \s*(?:(?:from|in)\s+)?(?P<cursor>[A-Za-z_]\w*|"[^"]+")\s*;?\s*$"""
)
_DECLARE: Final = re.compile(
    r"""(?isx)^\s*declare\s+(?P<cursor>[A-Za-z_]\w*|"[^"]+")\s+
    (?:(?:binary|insensitive|asensitive|scroll|no\s+scroll)\s+)*cursor\s+
    (?:(?:with|without)\s+hold\s+)?for\s+(?P<query>.+)$"""
)
_CURSOR_MISC: Final = re.compile(r"(?i)^\s*(close|move)\b")
#: Verbs that move no table data (or whose data access is logged separately), which
#: sqlglot parses badly or not at all; they are analysed as ``other`` without parsing.
UTILITY_VERBS: Final = frozenset(
    {"abort", "analyze", "analyse", "begin", "call", "check", "checkpoint", "checksum",
     "close", "cluster", "commit", "deallocate", "describe", "desc", "discard", "do", "end",
     "execute", "explain", "flush", "handler", "help", "install", "kill", "listen", "load",
     "lock", "notify", "optimize", "prepare", "reindex", "release", "repair", "rollback",
     "savepoint", "show", "start", "uninstall", "unlisten", "unlock", "use", "vacuum",
     "xa"}
)  # fmt: skip
_MASK: Final = {d: re.compile(first_pass_regex(d, numbers=False)) for d in ("postgres", "mysql")}


def classify_keyword(text: str) -> str:
    """Statement kind from the leading keyword (after ``WITH ...``, from the main verb)."""
    match = _FIRST_WORD.match(text)
    if match is None:
        return "other"
    word = match.group(1).lower()
    if word == "with":
        verb = _WITH_VERB.search(text)
        return verb.group(1).lower() if verb else "select"
    return KEYWORD_KINDS.get(word, "other")


def kind_of_command_tag(tag: str | None) -> str:
    """Statement kind of a pgaudit/MariaDB command tag (``CREATE TABLE AS`` is ``ddl``)."""
    if not tag:
        return "other"
    return classify_keyword(tag)


def mask_sql(text: str, dialect: str) -> str:
    """Literals to ``?`` and comments to spaces, in Python (cold path, one statement).

    >>> mask_sql("SELECT 'from x' FROM t -- join y", "postgres")
    'SELECT ? FROM t  '
    """

    def _sub(match: re.Match[str]) -> str:
        if match.group("k") is not None:
            return match.group("k")
        return " " if match.group("c") is not None else "?"

    return _MASK[dialect].sub(_sub, text)


def split_statements(text: str, dialect: str) -> list[str]:
    """Split on top-level semicolons, using sqlglot's tokenizer so ``';'`` in a string does
    not split; falls back to masking literals when the tokenizer rejects the text.

    >>> split_statements("SELECT ';'; SELECT 2;", "postgres")
    ["SELECT ';'", 'SELECT 2']
    """
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(text)
        cuts = [t.start for t in tokens if t.token_type == TokenType.SEMICOLON]
    except Exception:  # any tokenizer failure means "split by hand"
        blanked = _MASK[dialect].sub(lambda m: m.group("k") or " " * len(m.group(0)), text)
        cuts = [i for i, ch in enumerate(blanked) if ch == ";"]
    parts, start = [], 0
    for cut in [*cuts, len(text)]:
        part = text[start:cut].strip()
        if part:
            parts.append(part)
        start = cut + 1
    return parts or [text.strip()]


@dataclass(frozen=True)
class OutfileClause:
    """A MySQL ``INTO OUTFILE``/``INTO DUMPFILE`` clause found (and cut) in a statement."""

    target: str
    remainder: str


def cut_outfile(text: str) -> OutfileClause | None:
    """Find a MySQL ``INTO OUTFILE|DUMPFILE`` clause; return it and the statement without it.

    >>> cut_outfile("SELECT a INTO OUTFILE '/tmp/x' FIELDS TERMINATED BY ',' FROM t")
    OutfileClause(target='outfile', remainder='SELECT a FROM t')
    """
    match = _OUTFILE.search(text)
    if match is None:
        return None
    remainder = text[: match.start()] + " " + text[match.end() :]
    return OutfileClause(match.group(1).lower(), " ".join(remainder.split()))


@dataclass(frozen=True)
class CursorCommand:
    """``FETCH``/``MOVE`` (``query`` None) or ``DECLARE ... CURSOR FOR query``."""

    verb: str
    cursor: str
    count: int | None = None
    fetch_all: bool = False
    query: str | None = None


def parse_cursor_command(text: str) -> CursorCommand | None:
    """Recognise cursor commands, which sqlglot does not parse.

    ``count`` is the number of rows asked for (``None`` when it is a placeholder or
    ``ALL``); ``NEXT``/``PRIOR``/``ABSOLUTE n`` and a bare ``FETCH c`` ask for one row.

    >>> parse_cursor_command("FETCH FORWARD 50 FROM c")
    CursorCommand(verb='fetch', cursor='c', count=50, fetch_all=False, query=None)
    >>> parse_cursor_command("fetch all in c").fetch_all
    True
    >>> parse_cursor_command("DECLARE c CURSOR FOR SELECT 1").query
    'SELECT 1'
    """
    if (match := _FETCH.match(text)) is not None:
        cursor = match.group("cursor").strip('"').lower()
        verb = match.group(1).lower()
        raw = match.group("n") or match.group("dn")
        if match.group("all") or (raw and raw.lower() == "all"):
            return CursorCommand(verb, cursor, None, True)
        if raw is None:
            return CursorCommand(verb, cursor, 1)
        return CursorCommand(verb, cursor, None if raw == "?" else abs(int(raw)))
    if (match := _DECLARE.match(text)) is not None:
        return CursorCommand(
            "declare",
            match.group("cursor").strip('"').lower(),
            query=match.group("query").strip().rstrip(";"),
        )
    return None


def first_keyword(text: str) -> str | None:
    """Lower-cased leading keyword.

    >>> first_keyword("  (SELECT 1)"), first_keyword("42")
    ('select', None)
    """
    match = _FIRST_WORD.match(text)
    return match.group(1).lower() if match else None


def is_cursor_misc(text: str) -> bool:
    """``CLOSE``/``MOVE`` that :func:`parse_cursor_command` could not read: no data moves."""
    return _CURSOR_MISC.match(text) is not None


def unquote_name(name: str) -> str:
    """``"Public" . "T"`` -> ``public.t``: strip quotes and spaces, lower-case.

    >>> unquote_name('"Public" . `T`')
    'public.t'
    """
    parts = [p.strip().strip('"`').replace('""', '"') for p in re.split(r"\s*\.\s*", name)]
    return ".".join(parts).lower()


def tables_by_keyword(masked: str) -> tuple[list[str], list[str]]:
    """``(read, written)`` table names found after ``FROM``/``JOIN`` and the write verbs.

    ``masked`` must already have its literals masked (:func:`mask_sql`).

    >>> tables_by_keyword("insert into a select * from b join c.d on 1=1")
    (['b', 'c.d'], ['a'])
    """
    written = [unquote_name(m.group(1)) for m in _WRITE_TABLE.finditer(masked)]
    read = []
    for match in _READ_TABLE.finditer(masked):
        name = unquote_name(match.group(1))
        if name not in _NOT_TABLES and name not in read and name not in written:
            read.append(name)
    return read, written


def copy_export_form(masked: str) -> tuple[str, str] | None:
    """``(export_form, target)`` of a ``COPY ... TO`` text, by keyword.

    >>> copy_export_form("COPY (select 1) TO STDOUT")
    ('copy_query_to', 'stdout')
    """
    match = _COPY_TO.match(masked)
    if match is None:
        return None
    target = match.group(2).lower()
    form = "copy_query_to" if match.group(1) else "copy_to"
    return form, target if target in ("stdout", "program") else "file"
