"""One MariaDB ``server_audit`` line split into typed fields, vectorised.

The field layout, escapes, timestamp formats, host forms and command classes are those
documented in :mod:`streams.mariadb.audit`; this module holds the column-level work so
the parser module can hold the record-level work (merging TABLE events into statements).
"""

from __future__ import annotations

import io
import re
from typing import Final

import polars as pl

from streams.base import MAX_RECORD_CHARS

_FIELDS: Final = ["ts", "serverhost", "user", "host", "conn", "qid", "op", "db", "rest"]
# `rest` is "object,retcode". A statement object is quoted and may hold commas, so the
# retcode is taken from the end, and only the framing is checked (opening quote, closing
# quote not escaped): a reverse scan of the tail instead of a pass over the statement.
_RET_RE: Final = r",(-?\d{0,9})$"
_QUOTED_TAIL_RE: Final = r"(?:^|[^\\])(?:\\\\)*',-?\d{1,9}$"
_PY_QUOTED: Final = re.compile(r"'(?:.*[^\\])?(?:\\\\)*',-?\d{1,9}", re.DOTALL)
_DEFAULT_TS: Final = "%Y%m%d %H:%M:%S"
_ISO_TS_RE: Final = (
    r"^(\d{4})-?(\d{2})-?(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
# First keyword after blanks, '(' and comments; `/*!` comments are executed, so their
# content is the statement. The second word tells CREATE USER from CREATE TABLE.
_KEYWORD_RE: Final = (
    r"^(?:\s|\(|/\*!\d*|/\*(?:[^*]|\*+[^*/])*\*+/|(?:--\s|#)[^\n]*(?:\n|$))*"
    r"(?<tag>[A-Za-z]+)(?:\s+(?:OR\s+REPLACE\s+)?(?<second>[A-Za-z]+))?"
)
_HOST_RE: Final = r"^(?:\[(?<ip6>[^\]]*)\]|(?<ip>[^:\[\]]*)):(?<port>\d{1,5}|unavailable)$"
_UNESCAPE: Final = (["\\\\", "\\'", "\\n", "\\t", "\\r"], ["\\", "'", "\n", "\t", "\r"])

TABLE_OPS: Final = ("READ", "WRITE", "CREATE", "ALTER", "RENAME", "DROP")
SESSION_KINDS: Final = {"CONNECT": "connect", "CHANGEUSER": "connect",
                        "PROXY_CONNECT": "connect", "DISCONNECT": "disconnect",
                        "FAILED_CONNECT": "failed_connect"}  # fmt: skip
_KNOWN_OPS: Final = (*TABLE_OPS, *SESSION_KINDS, "QUERY")
_DDL: Final = ("CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE")
CLASS_OF_TAG: Final = {
    **dict.fromkeys(["SELECT", "WITH", "TABLE", "VALUES", "HANDLER", "SHOW", "DESCRIBE",
                     "DESC", "EXPLAIN"], "READ"),
    **dict.fromkeys(["INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD"], "WRITE"),
    **dict.fromkeys(_DDL, "DDL"), "GRANT": "ROLE", "REVOKE": "ROLE",
    "CALL": "FUNCTION", "DO": "FUNCTION", "SET": "MISC_SET",
}  # fmt: skip
_S, _I, _T = pl.String, pl.Int64, pl.Datetime("us", "UTC")
_COMMON: Final = {"seq": _I, "line": _I, "event_time": _T, "serverhost": _S, "user": _S,
                  "host": _S, "conn": _I, "qid": _I, "op": _S, "db": _S, "obj": _S}  # fmt: skip
# A table event keeps enough to become an orphan row later (`src` of its chunk, `name`).
_TABLE_SCHEMA: Final = pl.Schema({**_COMMON, "name": _S, "src": _S})
_ROW_SCHEMA: Final = pl.Schema({**_COMMON, "ret": _S, "statement": _S, "tag": _S, "second": _S})


def command_class(tag: pl.Expr, second: pl.Expr) -> pl.Expr:
    """Class of a statement from its first two keywords (upper-case).

    >>> df = pl.DataFrame({"t": ["SELECT", "CREATE", "CREATE", "SET", "SET"],
    ...                    "s": [None, "USER", "TABLE", "NAMES", "PASSWORD"]})
    >>> df.select(command_class(pl.col("t"), pl.col("s")))["class"].to_list()
    ['READ', 'ROLE', 'DDL', 'MISC_SET', 'ROLE']
    """
    by_tag = tag.replace_strict(CLASS_OF_TAG, default="MISC", return_dtype=pl.String)
    role = (tag.is_in(_DDL) & second.is_in(["USER", "ROLE"])) | (
        (tag == "SET") & (second == "PASSWORD")
    )
    return pl.when(role).then(pl.lit("ROLE")).otherwise(by_tag.fill_null("MISC")).alias("class")


def _split_lines(text: str) -> tuple[pl.Series, list[int]]:
    """Physical lines of ``text`` (no terminators) and the indices of lines not valid UTF-8.

    The CSV reader with a separator absent from the text splits lines in native code several
    times faster than ``str.split``; a line count check guards it. Lone surrogates (text
    decoded with ``surrogateescape``) cannot enter polars: such lines are kept with
    backslash escapes and reported so the caller rejects them as ``not_utf8``.
    """
    n = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    sep = next((c for c in "\x1f\x1e\x1d\x01" if c not in text), None)
    try:
        data: bytes | None = text.encode("utf-8")
    except UnicodeEncodeError:
        data = None
    if data is not None and sep is not None and n > 0 and "\r" not in text:
        try:
            df = pl.read_csv(io.BytesIO(data), has_header=False, separator=sep, quote_char=None,
                             infer_schema=False, new_columns=["raw"])  # fmt: skip
            if df.shape == (n, 1):
                return df["raw"].fill_null(""), []
        except pl.exceptions.PolarsError:  # any reader failure: take the exact path below
            pass
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    bad = []
    for i, ln in enumerate(lines if data is None else ()):
        try:
            ln.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(i)
            lines[i] = ln.encode("utf-8", "backslashreplace").decode("utf-8")
    return pl.Series("raw", lines, pl.String), bad


def _parse_time(ts: pl.Series, timezone: str) -> pl.Series:
    """UTC datetimes of ISO-like timestamp strings; null where no supported format matches.

    >>> _parse_time(pl.Series(["2023-12-07T13:14:28.5+0100", "2024-01-31 10:00:00"]),
    ...             "Asia/Shanghai").dt.strftime("%F %T%.3f").to_list()
    ['2023-12-07 12:14:28.500', '2024-01-31 02:00:00.000']
    """
    g = ts.str.extract_groups(_ISO_TS_RE).struct.unnest()
    g.columns = ["y", "mo", "d", "h", "mi", "s", "frac", "off"]
    off = pl.col("off").str.replace("Z", "+0000").str.replace(":", "")
    minutes = pl.when(off.str.starts_with("-")).then(-1).otherwise(1) * (
        off.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
        + off.str.slice(3, 2).cast(pl.Int64, strict=False))  # fmt: skip
    frac = pl.col("frac").fill_null("").str.pad_end(6, "0").str.slice(0, 6)
    naive = pl.format("{}-{}-{} {}:{}:{}.{}", "y", "mo", "d", "h", "mi", "s", frac)
    naive = naive.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.6f", strict=False)
    shifted = (naive - pl.duration(minutes=minutes)).dt.replace_time_zone("UTC")
    local = _localize(naive, timezone)
    return g.select(pl.when(pl.col("off").is_null()).then(local).otherwise(shifted)).to_series()


def _localize(naive: pl.Expr, timezone: str) -> pl.Expr:
    if timezone == "UTC":
        return naive.dt.replace_time_zone("UTC")
    local = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC")


def _classify(raw: str, time_ok: bool) -> str:
    """Reject reason of a line the vectorised checks left open (rare: plain Python)."""
    if len(raw) > MAX_RECORD_CHARS:
        return "too_long"
    fields = raw.split(",", 8)
    if len(fields) < 9:
        return "wrong_field_count"
    if not time_ok:
        return "bad_timestamp"
    if fields[6] == "QUERY" and not _PY_QUOTED.fullmatch(fields[8]):
        return "truncated" if fields[8].startswith("'") else "bad_audit_payload"
    return "bad_audit_payload"


def _keywords(stmt: pl.Series, tag: pl.Series) -> pl.DataFrame:
    """Upper-case first and second keyword of each statement (see ``_KEYWORD_RE``), given
    ``tag``, the plain first word (upper-case) that covers nearly every statement: only
    leading blanks, comments or '(' and the verbs whose second word matters pay for the
    full pattern.

    >>> stmts = pl.Series(["select 1", "/*!40101 SET NAMES utf8 */", " create user u", None])
    >>> _keywords(stmts, stmts.str.extract(r"^[A-Za-z]+", 0).str.to_uppercase()).rows()
    [('SELECT', None), ('SET', 'NAMES'), ('CREATE', 'USER'), (None, None)]
    """
    second = pl.repeat(None, stmt.len(), dtype=pl.String, eager=True)
    full = (tag.is_null() & stmt.is_not_null()) | tag.is_in([*_DDL, "SET"])
    if full.any():
        idx = full.arg_true()
        kw = stmt.gather(idx).str.extract_groups(_KEYWORD_RE).struct.unnest()
        tag = tag.scatter(idx, kw["tag"].str.to_uppercase())
        second = second.scatter(idx, kw["second"].str.to_uppercase())
    return pl.DataFrame([tag.alias("tag"), second.alias("second")])


def _with_client(frame: pl.DataFrame) -> pl.DataFrame:
    """Add client_ip/client_port; parsed once per distinct host, which are few."""
    m = pl.col("host").str.extract_groups(_HOST_RE)
    ip = pl.coalesce(m.struct.field("ip6"), m.struct.field("ip"), pl.col("host"))
    hosts = frame.select(pl.col("host").unique()).with_columns(
        client_ip=pl.when(ip != "").then(ip),
        client_port=m.struct.field("port").cast(pl.Int32, strict=False))  # fmt: skip
    return frame.join(hosts, on="host", how="left", nulls_equal=True, maintain_order="left")
