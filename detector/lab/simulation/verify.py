"""Check labels against what the server logged, and count what each label covers.

Every statement of a labelled session must appear in the parsed log (canonical events of
``detector.commands.parse.parse_files``) for the labelled user, with the logged text, at a
simulated time inside the label's ``[start, end]``.  Each planned statement is matched to
the unused logged event of the same user and text nearest its planned time.

>>> import polars as pl
>>> from .sessions import LabelSpec, Session, Statement, from_ms
>>> t0 = 1_709_542_800_000
>>> s = Session("u1", "127.0.0.10", None, t0, (Statement(t0 + 10, "SELECT 1"),), t0 + 20, ("x",))
>>> labels = labels_from_spans([s], {0: (t0, t0 + 20)}, [LabelSpec("x", "k", False, "", "")])
>>> events = pl.DataFrame({"event_kind": ["statement"], "user": ["u1"], "statement": ["SELECT 1"],
...     "event_time": [from_ms(t0 + 11)], "rows": [1]})
>>> label_coverage([s], events, labels).select("scenario", "statements", "matched", "rows").rows()
[('x', 1, 1, 1)]
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import polars as pl

from .plan import labels_from_spans
from .sessions import Session, Statement, to_ms

__all__ = ["label_coverage", "labels_from_spans", "mismatches"]


def _index(events: pl.DataFrame) -> dict[tuple[str, str], list[tuple[int, int | None]]]:
    stmts = events.filter(pl.col("event_kind") == "statement")
    out: dict[tuple[str, str], list[tuple[int, int | None]]] = defaultdict(list)
    for user, text, t, rows in stmts.select("user", "statement", "event_time", "rows").iter_rows():
        out[(user, text)].append((to_ms(t), rows))
    for v in out.values():
        v.sort(key=lambda e: e[0])
    return out


def label_coverage(
    sessions: Sequence[Session],
    events: pl.DataFrame,
    labels: Iterable[dict[str, Any]],
    logged: Callable[[Statement], str] = lambda st: st.logged_sql,
) -> pl.DataFrame:
    """Per label: planned statements, statements matched inside its window, their rows.

    Parameters
    ----------
    sessions
        The plan's sessions (their ``labels`` name the scenarios).
    events
        Canonical events parsed from the produced log.
    labels
        The contents of ``labels.json``.
    logged
        The text the server logs for a planned statement: PostgreSQL's by default; for
        MariaDB :func:`.mysql_dialect.logged_sql`.

    Returns
    -------
    polars.DataFrame
        ``scenario kind user negative start end statements matched rows``, one row per
        label; ``matched < statements`` means the log and the labels disagree.
    """
    index = _index(events)
    # per label: a session carrying two labels is checked against each of them
    used: dict[tuple[str, str], set[tuple[str, int]]] = defaultdict(set)
    windows = {
        (lab["scenario"], lab["user"]): (
            to_ms(dt.datetime.fromisoformat(lab["start"])),
            to_ms(dt.datetime.fromisoformat(lab["end"])),
            lab,
        )
        for lab in labels
    }
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for s in sessions:
        for name in s.labels:
            lo, hi, _ = windows[(name, s.user)]
            c = counts[(name, s.user)]
            for st in s.statements:
                c[0] += 1
                text = logged(st)
                cands = index.get((s.user, text), [])
                pos = bisect.bisect_left(cands, st.at_ms, key=lambda e: e[0])
                order = sorted(
                    range(max(0, pos - 3), min(len(cands), pos + 50)),
                    key=lambda k: abs(cands[k][0] - st.at_ms),
                )
                for k in order:
                    key = (text, k)
                    t, rows = cands[k]
                    if key not in used[(name, s.user)] and lo <= t <= hi:
                        used[(name, s.user)].add(key)
                        c[1] += 1
                        c[2] += rows or 0
                        break
    return pl.DataFrame(
        [
            {
                "scenario": name,
                "kind": lab["kind"],
                "user": user,
                "negative": lab["negative"],
                "start": lab["start"],
                "end": lab["end"],
                "statements": c[0],
                "matched": c[1],
                "rows": c[2],
            }
            for (name, user), c in counts.items()
            for lab in [windows[(name, user)][2]]
        ]
    )


def mismatches(coverage: pl.DataFrame) -> list[str]:
    """Labels whose planned statements were not all found in their window."""
    bad = coverage.filter(pl.col("statements") != pl.col("matched"))
    return [
        f"{r['scenario']} {r['user']}: {r['matched']}/{r['statements']}"
        for r in bad.iter_rows(named=True)
    ]
