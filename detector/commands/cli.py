"""The ``exfil-detector`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from detector.commands.parse import COMPRESSIONS
from detector.commands.run import add_parser as add_run_parser
from detector.commands.ship import add_parser as add_ship_parser
from detector.commands.source_flags import (
    add_metrics_flags,
    add_source_flags,
    metrics_values,
    source_values,
)
from detector.config import load_config
from detector.exceptions import ShipError
from detector.lab.simulate_command import add_parser as add_simulate_parser
from streams.exceptions import ExfilDetectorError


def bundled_sample() -> Path:
    """Path of the bundled sample audit log."""
    return Path(str(resources.files("detector") / "data" / "sample" / "postgresql.csv"))


def bundled_sample_config() -> Path:
    """Config of the bundled sample (roles of its users, its catalog)."""
    return Path(str(resources.files("detector") / "data" / "sample" / "config.toml"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exfil-detector",
        description="Streaming detector of insider bulk data exfiltration from audit logs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parse", help="parse audit logs into the canonical event table")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add_source_flags(p)
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    p.add_argument(
        "--analyse",
        action="store_true",
        help="add SQL-analysis columns (tables, sensitive columns, row estimates, ...)",
    )
    p.add_argument("--catalog", type=Path, default=None, help="sensitivity catalog TOML")
    p.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="lz4",
        help="Parquet codec (default lz4: fastest to write; zstd: smallest)",
    )
    p.add_argument(
        "--dead-letter",
        type=Path,
        default=None,
        help="JSON Lines file for rejected lines (default: OUT with .deadletter.jsonl)",
    )

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

    d = sub.add_parser(
        "demo", help="replay the bundled sample audit log (7 simulated days of a records office)"
    )
    d.add_argument("--out", type=Path, default=Path("demo-out/alerts.jsonl"))

    add_simulate_parser(sub)
    add_ship_parser(sub)
    add_run_parser(sub)

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
    v.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "parse":
            from detector.commands.parse import run_parse

            config = load_config(args.config, source_values(args))
            return run_parse(
                args.paths,
                config,
                out=args.out,
                dead_letter=args.dead_letter,
                analyse=args.analyse or args.catalog is not None,
                compression=args.compression,
            )
        if args.command == "replay":
            from detector.commands.replay import run_replay

            flags = (
                source_values(args)
                | metrics_values(args)
                | {
                    "state": args.state,
                    "alerts_per_day": args.alerts_per_day,
                    "feedback": args.feedback,
                }
            )
            config = load_config(args.config, flags)
            return run_replay(
                args.paths,
                config,
                alerts_out=args.alerts_out,
                dead_letter=args.dead_letter,
                progress=None if args.quiet else sys.stderr,
                history=args.history,
            )
        if args.command == "demo":
            from detector.commands.replay import run_replay

            sample = bundled_sample()
            print(f"replaying the bundled sample {sample.name} (7 days, 20 users)")
            config = load_config(bundled_sample_config())
            return run_replay([sample], config, alerts_out=args.out)
        if args.command == "ship":
            from detector.commands.ship import run_ship

            flags = source_values(args)
            try:
                return run_ship(
                    args.paths,
                    load_config(args.config, flags),
                    bootstrap=args.bootstrap,
                    topic=args.topic,
                    rate=args.rate,
                    create_partitions=args.create_partitions,
                )
            except ShipError as exc:  # not delivered: exit 1, like a failed shipper
                print(f"exfil-detector: error: {exc}", file=sys.stderr)
                return 1
        if args.command == "run":
            from detector.commands.run import run_command

            return run_command(args)
        if args.command == "simulate":
            from detector.lab.simulate_command import run_simulate

            return run_simulate(args)
        if args.command == "evaluate":
            from detector.lab.evaluate_command import run_evaluate

            config = None if args.config is None else load_config(args.config)
            return run_evaluate(
                args.logs,
                alerts_file=args.alerts,
                config=config,
                warmup_days=args.warmup_days,
                json_out=args.json_out,
                progress=None if args.quiet else sys.stderr,
            )
    except ExfilDetectorError as exc:
        print(f"exfil-detector: error: {exc}", file=sys.stderr)
        return 2
    return 1
