"""``exfil-detector replay`` and ``demo``: files through the replay engine
(:mod:`detector.replay`); progress to stderr, an alert table and a summary to stdout, every
alert (its final revision) to ``--alerts-out`` as JSON Lines.

With ``--state FILE`` the run continues from the state saved there (if the file exists)
and saves its state at the end *without* closing the windows still open: the next run
on the following log continues exactly where this one stopped. Without it, every window
is closed at the end of the input and decided.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from detector.commands.source_flags import (
    add_metrics_flags,
    add_source_flags,
    metrics_values,
    source_values,
)
from detector.config import Config, load_config
from detector.sample import bundled_sample, bundled_sample_config


def add_parser(sub: Any) -> None:
    """The ``replay`` and ``demo`` subcommands' flags."""
    r = sub.add_parser("replay", help="replay audit logs through the detector; write alerts")
    r.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add_source_flags(r)
    r.add_argument("--catalog", type=Path, default=None, help="sensitivity catalog TOML")
    r.add_argument(
        "--state",
        type=Path,
        default=None,
        help="state file: continue from it if it exists, save to it at the end",
    )
    r.add_argument("--alerts-out", type=Path, required=True, help="JSON Lines file of alerts")
    r.add_argument(
        "--alerts-per-day", type=float, default=None, help="alert budget per window scale"
    )
    r.add_argument(
        "--history",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="past audit log to learn from first, without alerting (repeatable)",
    )
    r.add_argument(
        "--feedback",
        type=Path,
        default=None,
        help="analyst verdicts (TOML: expected jobs, false positives) honoured by this run",
    )
    r.add_argument("--dead-letter", type=Path, default=None, help="JSON Lines of rejected lines")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    add_metrics_flags(r)
    r.set_defaults(run=run)

    d = sub.add_parser(
        "demo", help="replay the bundled sample audit log (7 simulated days of a records office)"
    )
    d.add_argument("--out", type=Path, default=Path("demo-out/alerts.jsonl"))
    d.set_defaults(run=run_demo)


def run(args: argparse.Namespace) -> int:
    """``replay``: the flags into the config, then :func:`run_replay`."""
    flags = source_values(args) | metrics_values(args)
    flags |= {"state": args.state, "alerts_per_day": args.alerts_per_day}
    flags |= {"feedback": args.feedback}
    return run_replay(
        args.paths,
        load_config(args.config, flags),
        alerts_out=args.alerts_out,
        dead_letter=args.dead_letter,
        progress=None if args.quiet else sys.stderr,
        history=args.history,
    )


def run_demo(args: argparse.Namespace) -> int:
    """``demo``: the bundled sample, with its config."""
    sample = bundled_sample()
    print(f"replaying the bundled sample {sample.name} (7 days, 20 users)")
    return run_replay([sample], load_config(bundled_sample_config()), alerts_out=args.out)


def run_replay(
    paths: Sequence[Path],
    config: Config,
    *,
    alerts_out: Path,
    dead_letter: Path | None = None,
    stream: TextIO | None = None,
    progress: TextIO | None = sys.stderr,
    history: Sequence[Path] = (),
) -> int:
    # the engine's imports (polars, sqlglot, river) wait until a replay runs: the command
    # line starts fast whatever the command
    from detector.alerts import write_jsonl
    from detector.commands.alert_table import format_alert_table
    from detector.metrics_server import serve_metrics
    from detector.replay import replay_files

    # the sys.stdout of the call, not of import time (tests swap it)
    stream = sys.stdout if stream is None else stream
    dlq = dead_letter if dead_letter is not None else alerts_out.with_suffix(".deadletter.jsonl")
    if dlq.exists():
        dlq.unlink()
    metrics, server = serve_metrics(config, None)
    try:
        summary = replay_files(
            paths,
            config,
            state_path=config.state,
            dead_letter=dlq,
            progress=progress,
            history=history,
            metrics=metrics,
        )
        if server is not None and config.metrics_linger_seconds:
            # a batch job's last values: the next scrape must still find them
            time.sleep(config.metrics_linger_seconds)
    finally:
        if server is not None:
            server.close()
    alerts_out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(summary.alerts, alerts_out)
    if summary.alerts:
        print(format_alert_table(summary.alerts), file=stream)
    print(summary.render(), file=stream)
    print(f"alerts written    {alerts_out}", file=stream)
    if summary.rejects:
        print(f"dead letters      {dlq}", file=stream)
    return 0
