"""``exfil-detector evaluate``: its flags and entry (the engine is
:mod:`detector.lab.evaluation.evaluate`, imported only when ``evaluate`` runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """The ``evaluate`` subcommand's flags."""
    v = sub.add_parser(
        "evaluate", help="score the detector and five baselines on labelled (simulated) logs"
    )
    v.add_argument(
        "--logs",
        type=Path,
        required=True,
        metavar="DIR",
        help="simulation output: labels.json, users.json, run.json, the logs, config.toml",
    )
    v.add_argument(
        "--alerts",
        type=Path,
        default=None,
        metavar="FILE",
        help="our alerts (replay --alerts-out JSON Lines) instead of replaying the logs",
    )
    v.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config (default: DIR/config.toml, else built from DIR/users.json)",
    )
    v.add_argument(
        "--warmup-days",
        type=int,
        default=3,
        metavar="N",
        help="whole UTC days from the first statement's day before false alerts count (3)",
    )
    v.add_argument(
        "--json",
        type=Path,
        default=None,
        dest="json_out",
        metavar="FILE",
        help="also write the numbers as JSON",
    )
    v.add_argument(
        "--without",
        action="append",
        default=[],
        choices=("multivariate", "peer-clusters", "roles"),
        help="take a part of the detector away (repeatable): an ablation",
    )
    v.add_argument(
        "--no-baselines", action="store_true", help="score the detector alone (ablations)"
    )
    v.add_argument("--quiet", action="store_true", help="no progress lines")
    v.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """``evaluate``: the flags, then :func:`run_evaluate`."""
    from detector.config import load_config
    from detector.lab.evaluation.evaluate import run_evaluate

    return run_evaluate(
        args.logs,
        alerts_file=args.alerts,
        config=None if args.config is None else load_config(args.config),
        warmup_days=args.warmup_days,
        json_out=args.json_out,
        progress=None if args.quiet else sys.stderr,
        without=args.without,
        baselines=not args.no_baselines,
    )
