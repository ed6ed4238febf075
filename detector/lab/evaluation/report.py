"""The evaluation as a printed table, a JSON file and Markdown.

:func:`format_report` is what ``exfil-detector evaluate`` prints: a header (what was read,
how rows were known, the scoring rules), one block per detector (ours first, then the
baselines: caught / total, median and maximum delay per kind and overall, false alerts per
100 active user-days with the raw counts, warm-up alerts, hard negatives alerted), a
summary line per detector and the targets. :func:`write_json` / :func:`read_json` keep
the same numbers (:class:`~detector.lab.evaluation.results.EvaluationResult`);
:func:`render_markdown` renders one or more runs for ``bench/RESULTS.md``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from detector.lab.evaluation.errors import EvaluationError
from detector.lab.evaluation.matching import DEFAULT_LATENCY, FALSE_GRACE, LATENCY, PRE_START
from detector.lab.evaluation.results import DetectorScore, EvaluationResult, KindScore
from detector.lab.evaluation.targets import check_targets, format_delay, format_rate, format_span

_STAMP: Final = "%Y-%m-%d %H:%M"
_WIDTH: Final = 100


def rules_text() -> str:
    """The scoring rules in one sentence set (from :mod:`detector.lab.evaluation.matching`)."""
    slow = ", ".join(f"{format_span(v)} for {k}" for k, v in LATENCY.items())
    return (
        f"caught = an alert of the user overlapping [start - {format_span(PRE_START)}, end] "
        f"that fired within [start, end + {format_span(DEFAULT_LATENCY)}] ({slow}); "
        f"delay = its time - start. False = overlapping no threat of its user widened to "
        f"[start - {format_span(PRE_START)}, end + {format_span(FALSE_GRACE)}]; counted as "
        "distinct (user, UTC day) pairs after the warm-up. Ours: alerts of severity medium "
        "or higher; baselines: every alert."
    )


def rows_text(result: EvaluationResult) -> str:
    """How the row counts the baselines read were known."""
    share = f"{100 * result.rows_logged_share:.1f}%"
    if result.db == "mariadb" or result.rows_logged_share == 0:
        return (
            f"the audit log counted the rows of {share} of the reads returning rows: every row "
            "figure is an "
            "estimate (catalog size, LIMIT, lookups); MariaDB's audit log has no row counts, "
            "where a DAM in front of the server would count result sets on the wire"
        )
    return (
        f"counted by the source (pgaudit log_rows) for {share} of the reads returning rows, "
        "the rest "
        "estimated (catalog size, LIMIT, lookups); a DAM would count result sets on the "
        "wire, and MariaDB's audit log has no counts at all"
    )


def _header(result: EvaluationResult) -> list[str]:
    kinds = {k.kind for d in result.detectors[:1] for k in d.kinds}
    first = result.detectors[0] if result.detectors else None
    positives = first.overall.total if first else 0
    negatives = first.hard_negatives if first else 0
    return [
        f"exfil-detector evaluate  {result.logs}",
        f"logs        {', '.join(result.files)} ({result.db})",
        f"period      {result.first_event:{_STAMP}} .. {result.last_event:{_STAMP}} UTC, "
        f"{result.statements:,} statements, {result.users} users",
        f"warm-up     {result.warmup_days} days, until {result.warmup_end:{_STAMP}} UTC",
        _wrapped("rows", rows_text(result)),
        f"labels      {positives} injected threats of {len(kinds)} kinds, "
        f"{negatives} hard negatives",
        _wrapped("rules", rules_text()),
    ]


def _wrapped(name: str, text: str) -> str:
    """A header entry wrapped under its value column, so a terminal does not break it."""
    return textwrap.fill(
        text, width=_WIDTH, initial_indent=f"{name:<12}", subsequent_indent=" " * 12
    )


def _kind_line(score: KindScore) -> str:
    caught = f"{score.caught}/{score.total}"
    return (
        f"  {score.kind:<24}{caught:>8}{format_delay(score.median_delay_s):>15}"
        f"{format_delay(score.max_delay_s):>13}"
    )


def format_detector(score: DetectorScore) -> str:
    """One detector's block of the printed report."""
    lines = [
        f"[{score.name}] {score.description}",
        f"  {'kind':<24}{'caught':>8}{'median delay':>15}{'max delay':>13}",
        *(_kind_line(k) for k in score.kinds),
        _kind_line(score.overall),
        _kind_line(score.after_warmup),
        f"  false alerts    {format_rate(score.false_per_100)} per 100 active user-days "
        f"({score.false_pairs} (user, day) pairs / {score.active_user_days} active user-days)",
        f"  warm-up alerts  {score.warmup_alerts} ({score.warmup_false_alerts} false)",
        f"  hard negatives  {score.hard_negatives_alerted}/{score.hard_negatives} alerted",
        f"  alerts          {score.alerts}",
    ]
    if score.note:
        lines.append(f"  note            {score.note}")
    return "\n".join(lines)


def _summary(result: EvaluationResult) -> list[str]:
    lines = [
        f"{'summary':<18}{'caught':>8}{'hit rate':>10}{'after warm-up':>15}{'false/100':>11}"
        f"{'false pairs':>13}"
        f"{'burst median':>14}{'slow median':>13}{'alerts':>8}"
    ]
    for d in result.detectors:
        slow = d.kind("low_and_slow")
        hit = d.overall.hit_rate
        lines.append(
            f"{d.name:<18}{f'{d.overall.caught}/{d.overall.total}':>8}"
            f"{'-' if hit is None else f'{100 * hit:.0f}%':>10}"
            f"{f'{d.after_warmup.caught}/{d.after_warmup.total}':>15}"
            f"{format_rate(d.false_per_100):>11}{d.false_pairs:>13}"
            f"{format_delay(d.burst.median_delay_s):>14}"
            f"{format_delay(slow.median_delay_s if slow else None):>13}{d.alerts:>8}"
        )
    return lines


def _mark(met: bool | None) -> str:
    return {True: "met ", False: "MISS", None: "n/a "}[met]


def format_report(result: EvaluationResult) -> str:
    """The printed report (see the module docstring)."""
    blocks = [
        "\n".join(_header(result)),
        *(format_detector(d) for d in result.detectors),
        "\n".join(_summary(result)),
        "\n".join(
            ["targets (ours)"]
            + [f"  [{_mark(c.met)}] {c.target}: {c.actual}" for c in check_targets(result)]
        ),
    ]
    return "\n\n".join(blocks)


def write_json(result: EvaluationResult, path: Path) -> None:
    """Write the result's numbers (:meth:`EvaluationResult.to_json`) to ``path``."""
    text = json.dumps(result.to_json(), indent=1, ensure_ascii=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EvaluationError(f"cannot write {path}: {exc.strerror}") from exc


def read_json(path: Path) -> EvaluationResult:
    """A result :func:`write_json` wrote."""
    try:
        return EvaluationResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise EvaluationError(f"cannot read {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EvaluationError(f"{path} is not an evaluation result: {exc}") from exc


def _cell(score: KindScore | None) -> str:
    if score is None or score.total == 0:
        return "-"
    if score.caught == 0:
        return f"0/{score.total}"
    return f"{score.caught}/{score.total}, {format_delay(score.median_delay_s)}"


def _markdown_run(result: EvaluationResult) -> list[str]:
    days = (result.last_event.date() - result.first_event.date()).days + 1
    names = [d.name for d in result.detectors]
    kinds = [k.kind for k in result.detectors[0].kinds] if result.detectors else []
    lines = [
        f"### {Path(result.logs).name}: {days} days, {result.users} users, "
        f"{result.statements:,} statements ({result.db})",
        "",
        f"Warm-up {result.warmup_days} days (until {result.warmup_end:{_STAMP}} UTC). "
        f"Rows: {rows_text(result)}.",
        "",
        "| detector | caught | caught after warm-up | false / 100 user-days "
        "| false (user, day) / active user-days | median delay, burst "
        "| median delay, low-and-slow | warm-up alerts (false) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in result.detectors:
        slow = d.kind("low_and_slow")
        lines.append(
            f"| {d.name} | {d.overall.caught}/{d.overall.total}"
            f" | {d.after_warmup.caught}/{d.after_warmup.total} | {format_rate(d.false_per_100)}"
            f" | {d.false_pairs} / {d.active_user_days} | {format_delay(d.burst.median_delay_s)}"
            f" | {format_delay(slow.median_delay_s if slow else None)}"
            f" | {d.warmup_alerts} ({d.warmup_false_alerts}) |"
        )
    lines += [
        "",
        "| kind (caught, median delay) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for kind in kinds:
        cells = [_cell(d.kind(kind)) for d in result.detectors]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", "Targets (ours):", ""]
    marks = {True: "[x]", False: "[ ] **not met**", None: "[ ] n/a"}
    lines += [f"- {marks[c.met]} {c.target}: {c.actual}" for c in check_targets(result)]
    return lines


def render_markdown(results: Sequence[EvaluationResult]) -> str:
    """One section per run: the detectors side by side, per kind, and the targets.

    >>> import datetime as dt
    >>> t = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)
    >>> r = EvaluationResult("/tmp/sim", "postgres", ("a.csv",), 10, 2, t, t, 3, t, 1.0, ())
    >>> render_markdown([r]).splitlines()[0]
    '### sim: 1 days, 2 users, 10 statements (postgres)'
    """
    lines: list[str] = []
    for result in results:
        if lines:
            lines.append("")
        lines += _markdown_run(result)
    lines.append("")
    lines.append(f"Scoring: {rules_text()}")
    return "\n".join(lines) + "\n"
