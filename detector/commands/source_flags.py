"""The command-line flags that say how to read audit records, shared by every command that
reads them (``parse``, ``replay``, ``ship``, ``run``), and their config values."""

from __future__ import annotations

import argparse
from pathlib import Path

from streams.file_source import FORMATS


def _tz_abbrev(text: str) -> tuple[str, str]:
    abbr, sep, offset = text.partition("=")
    if not sep or not abbr or not offset:
        raise argparse.ArgumentTypeError(f"expected ABBR=+HH:MM, got {text!r}")
    return abbr, offset


def add_source_flags(p: argparse.ArgumentParser) -> None:
    """``--format``, ``--log-line-prefix``, ``--server``, ``--tz-abbrev``,
    ``--mariadb-timezone`` and ``--config``."""
    p.add_argument("--format", choices=FORMATS, default=None, help="input format (default: auto)")
    p.add_argument(
        "--log-line-prefix",
        default=None,
        help="PostgreSQL log_line_prefix of stderr logs (default: detected)",
    )
    p.add_argument("--server", default=None, help="server name written into every event")
    p.add_argument(
        "--tz-abbrev",
        type=_tz_abbrev,
        action="append",
        default=None,
        metavar="ABBR=+HH:MM",
        help="meaning of a time-zone abbreviation in PostgreSQL timestamps (repeatable)",
    )
    p.add_argument(
        "--mariadb-timezone", default=None, help="IANA zone of MariaDB audit timestamps (UTC)"
    )
    p.add_argument("--config", type=Path, default=None, help="TOML config file")


def source_values(args: argparse.Namespace) -> dict[str, object]:
    """The config values of :func:`add_source_flags` (and ``--catalog`` where it exists).

    >>> p = argparse.ArgumentParser()
    >>> add_source_flags(p)
    >>> source_values(p.parse_args(["--tz-abbrev", "CST=+08:00"]))["tz_abbreviations"]
    {'CST': '+08:00'}
    """
    return {
        "format": args.format,
        "log_line_prefix": args.log_line_prefix,
        "server": args.server,
        "mariadb_timezone": args.mariadb_timezone,
        "tz_abbreviations": dict(args.tz_abbrev) if args.tz_abbrev else None,
        "catalog": getattr(args, "catalog", None),
    }


def add_metrics_flags(p: argparse.ArgumentParser) -> None:
    """``--metrics-port``, ``--metrics-addr`` and ``--metrics-linger`` (``[metrics]``)."""
    p.add_argument(
        "--metrics-port",
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on /metrics at this port; 'off': none "
        "(default: 9717 for run, none for replay)",
    )
    p.add_argument("--metrics-addr", default=None, help="address to serve them on (0.0.0.0)")
    p.add_argument(
        "--metrics-linger",
        type=float,
        default=None,
        metavar="SECONDS",
        help="keep serving this long after the end, for a last scrape (default 0)",
    )


def metrics_values(args: argparse.Namespace) -> dict[str, object]:
    """The config values of :func:`add_metrics_flags`."""
    return {
        "metrics_port": args.metrics_port,
        "metrics_addr": args.metrics_addr,
        "metrics_linger_seconds": args.metrics_linger,
    }
