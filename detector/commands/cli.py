"""The ``exfil-detector`` command line: one module per subcommand, each with ``add_parser``
(its flags, and ``run`` as the parser's default) and ``run(args) -> exit status``.

``parse``, ``replay``/``demo``, ``ship`` and ``run`` are in :mod:`detector.commands`;
``simulate`` and ``evaluate`` in :mod:`detector.lab`. Heavy imports (kafka-python, the
streaming engine, the simulator) wait until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from detector.commands import parse, replay, run, ship
from detector.lab import evaluate_command, simulate_command
from detector.sample import bundled_sample, bundled_sample_config
from streams.exceptions import ExfilDetectorError

#: in the order ``--help`` lists them
COMMANDS = (parse, replay, simulate_command, ship, run, evaluate_command)

__all__ = ["build_parser", "bundled_sample", "bundled_sample_config", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exfil-detector",
        description="Streaming detector of insider bulk data exfiltration from audit logs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except ExfilDetectorError as exc:
        print(f"exfil-detector: error: {exc}", file=sys.stderr)
        return 2
    return status
