"""The evaluation: the detector and five baselines scored on labelled logs (``evaluate``).

The logs directory is what the simulator writes (:mod:`detector.lab.evaluation.inputs`). Our
alerts come from a replay of its logs with its config (or from ``--alerts FILE``, an
``--alerts-out`` file of an earlier replay); the baselines run on the same logs parsed and
enriched once more (:mod:`detector.lab.evaluation.statements`), so an evaluate run reads the
logs at most twice. Every detector is scored by the same rules
(:mod:`detector.lab.evaluation.matching`) and printed side by side
(:mod:`detector.lab.evaluation.report`); ``--json FILE`` keeps the numbers.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final, TextIO

import polars as pl

from detector.config import Config
from detector.lab.evaluation.ablation import ablate
from detector.lab.evaluation.baselines import BASELINES
from detector.lab.evaluation.detections import Detection, from_alerts, read_alerts_jsonl
from detector.lab.evaluation.errors import EvaluationError
from detector.lab.evaluation.inputs import read_logs_dir, resolve_config
from detector.lab.evaluation.matching import score_detector, warmup_end
from detector.lab.evaluation.report import format_report, write_json
from detector.lab.evaluation.results import DetectorScore, EvaluationResult
from detector.lab.evaluation.statements import active_days, load_statements
from detector.replay import replay_files

#: Days of event time (from midnight UTC of the first statement's day) whose alerts are
#: reported apart and whose user-days are not in the false-alert rate.
DEFAULT_WARMUP_DAYS: Final = 3
OURS: Final = "ours"
OURS_DESCRIPTION: Final = "exfil-detector (alerts of severity medium or higher)"


def evaluate(
    logs_dir: Path,
    *,
    alerts_file: Path | None = None,
    config: Config | None = None,
    warmup_days: int = DEFAULT_WARMUP_DAYS,
    progress: TextIO | None = None,
    without: Iterable[str] = (),
    baselines: bool = True,
) -> EvaluationResult:
    """Score our detector and the baselines on ``logs_dir``; return the numbers.

    Parameters
    ----------
    logs_dir
        A simulation's output directory (labels.json, users.json, logs, ...).
    alerts_file
        Our alerts as JSON Lines (``replay --alerts-out``) instead of replaying the logs.
    config
        Detector config; by default the directory's ``config.toml``, else one built from
        its ``users.json`` (:func:`detector.lab.evaluation.inputs.resolve_config`).
    warmup_days
        Whole UTC days from the first statement's day before false alerts count.
    progress
        Where to say what is being done (nothing when ``None``).
    without
        Parts of the detector taken away (:mod:`detector.lab.evaluation.ablation`).
    baselines
        Whether the baselines are scored too (an ablation compares the detector with
        itself: they are the same in every variant).

    Raises
    ------
    EvaluationError
        The directory, its labels or the alerts file are unusable, or there are no
        statements in the logs.
    """
    if warmup_days < 0:
        raise EvaluationError(f"warm-up days must be >= 0, got {warmup_days}")
    logs = read_logs_dir(logs_dir)
    without = sorted(set(without))
    config = ablate(config or resolve_config(logs), without)

    def say(message: str) -> None:
        if progress is not None:
            print(message, file=progress, flush=True)

    ours: list[Detection]
    if alerts_file is not None:
        ours = read_alerts_jsonl(alerts_file)
    else:
        say(f"replaying {len(logs.log_files)} log file(s) through the detector")
        ours = from_alerts(replay_files(logs.log_files, config, progress=None).alerts)
    say("parsing the logs for the baselines")
    statements = load_statements(logs.log_files, config)
    first = statements["event_time"].min()
    last = statements["event_time"].max()
    until = warmup_end(first, warmup_days)  # type: ignore[arg-type]
    activity = active_days(statements)
    described = OURS_DESCRIPTION + (f", without {', '.join(without)}" if without else "")
    scores: list[DetectorScore] = [
        score_detector(OURS, described, ours, logs.labels, activity, until)
    ]
    if baselines:
        scores += _baselines(statements, logs.labels, activity, until, say)
    reads = statements.filter(pl.col("rows") > 0)
    return EvaluationResult(
        logs=str(logs.path),
        db=logs.db,
        files=tuple(p.name for p in logs.log_files),
        statements=statements.height,
        users=statements["user"].n_unique(),
        first_event=first,  # type: ignore[arg-type]
        last_event=last,  # type: ignore[arg-type]
        warmup_days=warmup_days,
        warmup_end=until,
        rows_logged_share=float(reads["rows_logged"].mean() or 0.0) if reads.height else 0.0,
        detectors=tuple(scores),
    )


def _baselines(
    statements: pl.DataFrame,
    labels: pl.DataFrame,
    activity: pl.DataFrame,
    until: dt.datetime,
    say: Callable[[str], None],
) -> list[DetectorScore]:
    """Every baseline run on the statements and scored like ours."""
    scores = []
    for baseline in BASELINES:
        say(f"baseline {baseline.name}")
        run = baseline.run(statements, until)
        scores.append(
            score_detector(
                baseline.name,
                baseline.description,
                run.detections,
                labels,
                activity,
                until,
                note=run.note,
            )
        )
    return scores


def run_evaluate(
    logs_dir: Path,
    *,
    alerts_file: Path | None = None,
    config: Config | None = None,
    warmup_days: int = DEFAULT_WARMUP_DAYS,
    json_out: Path | None = None,
    stream: TextIO | None = None,
    progress: TextIO | None = None,
    without: Iterable[str] = (),
    baselines: bool = True,
) -> int:
    """The ``evaluate`` command: :func:`evaluate`, the table to ``stream`` (default: the
    current ``sys.stdout``), the numbers to ``json_out``. Returns the exit status (0)."""
    stream = sys.stdout if stream is None else stream
    result = evaluate(
        logs_dir,
        alerts_file=alerts_file,
        config=config,
        warmup_days=warmup_days,
        progress=progress,
        without=without,
        baselines=baselines,
    )
    print(format_report(result), file=stream)
    if json_out is not None:
        write_json(result, json_out)
        print(f"\nnumbers written to {json_out}", file=stream)
    return 0
