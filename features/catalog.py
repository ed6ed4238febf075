"""The sensitivity catalog: which tables exist, how big they are, what their columns hold.

The catalog answers three questions the audit log cannot: how many rows a whole-table read
returns (pgaudit logs 0 for ``COPY t TO`` and cursor ``FETCH``, MariaDB logs no counts),
which columns ``SELECT *`` really read, and which columns hold personal data. It is a TOML
file, validated on load; every error names the offending key.

File format
-----------
.. code-block:: toml

    [defaults]
    postgres_schema = "public"   # unqualified PostgreSQL names resolve here (search_path)
    mysql_schema = "crm"         # MariaDB fallback when the event has no database

    [classes]                    # extra classes, each with a column-name pattern
    vehicle_plate = "plate_?no|licen[cs]e_plate"

    [heuristics]
    builtin = true               # false: only catalog entries and [classes] patterns

    [tables."public.citizens"]   # always "schema.table" (MariaDB: "database.table")
    rows = 1_200_000             # approximate row count (optional)
    columns = ["id", "national_id", "full_name", "phone", "remark"]   # optional, in order

    [tables."public.citizens".sensitive]   # column = class; overrides the heuristics
    full_name = "name"
    remark = "none"              # "none": not sensitive, whatever its name suggests

``features/data/catalog.example.toml`` is a complete example.

Name matching
-------------
Names are case-insensitive. A qualified name must match exactly (a leading catalog/database
part of a three-part name is ignored). An unqualified name resolves to the default schema
(``postgres_schema``, or for MariaDB the session's database) when the catalog has it there,
else to the only catalog table of that name (except for MariaDB sessions with a database:
there the database is authoritative), else it stays unresolved and is qualified with the
default schema when there is one.

Columns the catalog does not class are classed by :mod:`features.column_classes`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from features.column_classes import (
    BUILTIN_CLASSES,
    NOT_SENSITIVE,
    Heuristics,
    normalise_column,
)
from features.exceptions import CatalogError

_TOP_KEYS: Final = frozenset({"defaults", "classes", "heuristics", "tables"})
_DEFAULT_KEYS: Final = frozenset({"postgres_schema", "mysql_schema"})
_TABLE_KEYS: Final = frozenset({"rows", "columns", "sensitive"})
_HEURISTIC_KEYS: Final = frozenset({"builtin"})
_CLASS_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class TableInfo:
    """One catalog table.

    Parameters
    ----------
    name
        ``schema.table``, lower-case.
    rows
        Approximate row count, ``None`` when unknown.
    columns
        Known columns in table order (lower-case); empty when not listed.
    sensitive
        Explicit ``(column, class)`` pairs; class ``"none"`` marks a column not sensitive.
    """

    name: str
    rows: int | None = None
    columns: tuple[str, ...] = ()
    sensitive: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Catalog:
    """Validated sensitivity catalog with name resolution and column classing.

    Build it with :meth:`load` (a TOML file), :meth:`loads` (TOML text) or
    :meth:`from_mapping`; an empty ``Catalog()`` relies on heuristics alone.

    Examples
    --------
    >>> cat = Catalog.loads('''
    ... [tables."public.citizens"]
    ... rows = 1200
    ... columns = ["id", "sfz", "remark"]
    ... sensitive = { remark = "none" }
    ... ''')
    >>> cat.resolve_table("CITIZENS", default_schema="public")
    'public.citizens'
    >>> cat.column_class("public.citizens", "sfz"), cat.column_class("public.citizens", "remark")
    ('national_id', None)
    >>> cat.rows_of("public.citizens"), cat.columns_of("public.citizens")
    (1200, ('id', 'sfz', 'remark'))
    """

    tables: tuple[TableInfo, ...] = ()
    postgres_schema: str = "public"
    mysql_schema: str | None = None
    extra_classes: tuple[tuple[str, str], ...] = ()
    builtin_heuristics: bool = True
    by_name_: dict[str, TableInfo] = field(init=False, repr=False, compare=False)
    by_bare_name_: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    classes_: dict[tuple[str, str], str] = field(init=False, repr=False, compare=False)
    heuristics_: Heuristics = field(init=False, repr=False, compare=False)
    hash_: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {t.name: t for t in self.tables}
        bare: dict[str, list[str]] = {}
        for name in by_name:
            bare.setdefault(name.rsplit(".", 1)[-1], []).append(name)
        classes = {(t.name, col): cls for t in self.tables for col, cls in t.sensitive}
        heuristics = Heuristics.with_builtins(self.extra_classes, builtin=self.builtin_heuristics)
        object.__setattr__(self, "by_name_", by_name)
        object.__setattr__(self, "by_bare_name_", {k: tuple(v) for k, v in bare.items()})
        object.__setattr__(self, "classes_", classes)
        object.__setattr__(self, "heuristics_", heuristics)
        # Analyses are cached per catalog: hash it once, not on every cache lookup.
        fields = (
            self.tables,
            self.postgres_schema,
            self.mysql_schema,
            self.extra_classes,
            self.builtin_heuristics,
        )
        object.__setattr__(self, "hash_", hash(fields))

    def __hash__(self) -> int:
        return self.hash_

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        """Read and validate a catalog TOML file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read catalog: {exc}") from exc
        return cls.loads(text, source=str(path))

    @classmethod
    def loads(cls, text: str, *, source: str = "<catalog>") -> Catalog:
        """Parse and validate catalog TOML text.

        >>> Catalog.loads("[tables.t]\\nrows = 1", source="c.toml")
        Traceback (most recent call last):
        ...
        features.exceptions.CatalogError: c.toml: tables."t": names must be "schema.table"
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"{source}: invalid TOML: {exc}") from exc
        return cls.from_mapping(data, source=source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<catalog>") -> Catalog:
        """Validate an already-parsed catalog mapping (the TOML document's structure)."""
        return _parse_catalog(data, source)

    # -- queries -------------------------------------------------------------------------

    @property
    def classes(self) -> tuple[str, ...]:
        """Every class this catalog knows: built-ins, then ``[classes]`` additions."""
        extra = tuple(c for c, _ in self.extra_classes if c not in BUILTIN_CLASSES)
        return BUILTIN_CLASSES + extra

    def default_schema(self, dialect: str, database: str | None = None) -> str | None:
        """Schema unqualified names resolve to for ``dialect`` (and a MariaDB session db).

        >>> Catalog().default_schema("postgres"), Catalog().default_schema("mysql", "Shop")
        ('public', 'shop')
        """
        if dialect == "mysql":
            chosen = database or self.mysql_schema
            return chosen.lower() if chosen else None
        return self.postgres_schema

    def resolve_table(
        self, name: str, *, default_schema: str | None = None, unique_fallback: bool = True
    ) -> str | None:
        """The catalog key ``name`` refers to, or ``None`` when the catalog lacks it.

        ``unique_fallback=False`` makes ``default_schema`` authoritative (a MariaDB
        session's database): an unqualified name then never resolves to another schema.

        >>> cat = Catalog(tables=(TableInfo("public.t"), TableInfo("crm.u"), TableInfo("a.u"),
        ...                       TableInfo("b.u")))
        >>> [cat.resolve_table(n) for n in ("T", "db.public.t", "u", "crm.u", "x")]
        ['public.t', 'public.t', None, 'crm.u', None]
        >>> cat.resolve_table("u", default_schema="crm")
        'crm.u'
        """
        parts = name.lower().split(".")
        if len(parts) >= 2:
            key = ".".join(parts[-2:])
            return key if key in self.by_name_ else None
        bare = parts[0]
        if default_schema and f"{default_schema}.{bare}" in self.by_name_:
            return f"{default_schema}.{bare}"
        matches = self.by_bare_name_.get(bare, ()) if unique_fallback else ()
        return matches[0] if len(matches) == 1 else None

    def qualify_table(
        self, name: str, *, default_schema: str | None = None, unique_fallback: bool = True
    ) -> str:
        """The catalog key when resolvable, else ``name`` lower-cased and qualified with
        ``default_schema`` when unqualified.

        >>> Catalog().qualify_table("Orders", default_schema="public")
        'public.orders'
        """
        resolved = self.resolve_table(
            name, default_schema=default_schema, unique_fallback=unique_fallback
        )
        if resolved is not None:
            return resolved
        parts = name.lower().split(".")
        if len(parts) >= 2:
            return ".".join(parts[-2:])
        return f"{default_schema}.{parts[0]}" if default_schema else parts[0]

    def table(self, name: str) -> TableInfo | None:
        """The :class:`TableInfo` of a resolved catalog key."""
        return self.by_name_.get(name)

    def rows_of(self, table: str) -> int | None:
        """Catalog row count of a resolved table, ``None`` when unknown."""
        info = self.by_name_.get(table)
        return info.rows if info is not None else None

    def columns_of(self, table: str) -> tuple[str, ...]:
        """Catalog column list of a resolved table (empty when unknown)."""
        info = self.by_name_.get(table)
        return info.columns if info is not None else ()

    def column_class(self, table: str | None, column: str) -> str | None:
        """Sensitivity class of ``table.column``: catalog entry first, then heuristics.

        ``table`` may be ``None`` (column of an unknown table): heuristics only.
        """
        col = normalise_column(column)
        if table is not None:
            explicit = self.classes_.get((table, col))
            if explicit is not None:
                return None if explicit == NOT_SENSITIVE else explicit
        return self.heuristics_.classify(col)

    def sqlglot_schema(self) -> dict[str, object]:
        """Tables with known columns as sqlglot's ``{db: {table: {column: type}}}``."""
        schema: dict[str, dict[str, dict[str, str]]] = {}
        for info in self.tables:
            if info.columns:
                db, _, name = info.name.partition(".")
                schema.setdefault(db, {})[name] = dict.fromkeys(info.columns, "text")
        return dict(schema)


# -- validation ---------------------------------------------------------------------------


def _fail(source: str, key: str, message: str) -> CatalogError:
    return CatalogError(f"{source}: {key}: {message}")


def _check_keys(data: Mapping[str, Any], allowed: frozenset[str], source: str, where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise _fail(source, key, f"unknown key (expected one of {', '.join(sorted(allowed))})")


def _table_of(value: Any, source: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, key, f"expected a table, got {type(value).__name__}")
    return value


def _str_of(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(source, key, f"expected a non-empty string, got {value!r}")
    return value


def _parse_catalog(data: Mapping[str, Any], source: str) -> Catalog:
    _check_keys(data, _TOP_KEYS, source, "")
    defaults = _table_of(data.get("defaults", {}), source, "defaults")
    _check_keys(defaults, _DEFAULT_KEYS, source, "defaults")
    pg_schema = _str_of(
        defaults.get("postgres_schema", "public"), source, "defaults.postgres_schema"
    ).lower()
    my_schema = defaults.get("mysql_schema")
    if my_schema is not None:
        my_schema = _str_of(my_schema, source, "defaults.mysql_schema").lower()

    extra = _parse_classes(_table_of(data.get("classes", {}), source, "classes"), source)
    known_classes = set(BUILTIN_CLASSES) | {c for c, _ in extra} | {NOT_SENSITIVE}

    heur = _table_of(data.get("heuristics", {}), source, "heuristics")
    _check_keys(heur, _HEURISTIC_KEYS, source, "heuristics")
    builtin = heur.get("builtin", True)
    if not isinstance(builtin, bool):
        raise _fail(source, "heuristics.builtin", f"expected true or false, got {builtin!r}")

    tables = []
    seen: set[str] = set()
    for raw_name, body in _table_of(data.get("tables", {}), source, "tables").items():
        info = _parse_table(raw_name, body, known_classes, source)
        if info.name in seen:
            raise _fail(
                source, f'tables."{raw_name}"', "duplicate table (names are case-insensitive)"
            )
        seen.add(info.name)
        tables.append(info)
    return Catalog(tuple(tables), pg_schema, my_schema, extra, builtin)


def _parse_classes(classes: Mapping[str, Any], source: str) -> tuple[tuple[str, str], ...]:
    out = []
    for name, pattern in classes.items():
        key = f"classes.{name}"
        if not _CLASS_NAME.fullmatch(name) or name == NOT_SENSITIVE:
            raise _fail(source, key, "class names are lower-case identifiers other than 'none'")
        pattern = _str_of(pattern, source, key)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _fail(source, key, f"invalid regular expression: {exc}") from exc
        out.append((name, pattern))
    return tuple(out)


def _parse_table(raw_name: str, body: Any, known_classes: set[str], source: str) -> TableInfo:
    where = f'tables."{raw_name}"'
    body = _table_of(body, source, where)
    name = raw_name.lower()
    parts = name.split(".")
    if len(parts) != 2 or not all(parts):
        raise _fail(source, where, 'names must be "schema.table"')
    _check_keys(body, _TABLE_KEYS, source, where)

    rows = body.get("rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 0):
        raise _fail(source, f"{where}.rows", f"expected a non-negative integer, got {rows!r}")

    columns_raw = body.get("columns", [])
    if not isinstance(columns_raw, list):
        raise _fail(source, f"{where}.columns", "expected a list of column names")
    columns: list[str] = []
    for i, col in enumerate(columns_raw):
        col = normalise_column(_str_of(col, source, f"{where}.columns[{i}]"))
        if col in columns:
            raise _fail(source, f"{where}.columns[{i}]", f"duplicate column {col!r}")
        columns.append(col)

    sensitive = []
    for col, cls in _table_of(body.get("sensitive", {}), source, f"{where}.sensitive").items():
        key = f"{where}.sensitive.{col}"
        cls = _str_of(cls, source, key)
        if cls not in known_classes:
            raise _fail(
                source,
                key,
                f"unknown class {cls!r} (known: "
                f"{', '.join(sorted(known_classes))}; add new ones under [classes])",
            )
        col = normalise_column(col)
        if columns and col not in columns:
            raise _fail(source, key, f"column {col!r} is not in {where}.columns")
        sensitive.append((col, cls))
    return TableInfo(name, rows, tuple(columns), tuple(sensitive))
