"""``exfil-detector simulate``: a seeded records office on a real server, with injected threats.

The organisation (:mod:`detector.lab.simulation.org`), its normal work and the injected
scenarios become a deterministic plan; the plan runs as fast as it can against a real
PostgreSQL 15 + pgaudit or MariaDB + server_audit (a throwaway server, or a running one
given by ``--dsn``), and every log line then gets its simulated time. The output
directory holds the server's own logs, ``labels.json``, ``users.json``, a detector
``config.toml`` and ``catalog.toml`` for them, and ``run.json``; ``exfil-detector
evaluate --logs DIR`` scores a detector run on it.

Scenario sets: ``campaign`` (default; :mod:`detector.lab.simulation.campaign`) places every
threat kind every week after a 3-day warm-up, rotating variants, with weekly busy days and
new employees; ``sample`` is the bundled sample's fixed set of eleven.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import TextIO

DATABASES = ("postgres", "mariadb")
SCENARIO_SETS = ("campaign", "sample")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``simulate`` subcommand's flags."""
    p = sub.add_parser(
        "simulate",
        help="run a seeded records office with injected exfiltration on a real database",
        description="Run a seeded records office (roles with habits, schedules, busy days, new"
        " employees, injected exfiltration) as fast as possible on a real PostgreSQL 15 +"
        " pgaudit or MariaDB + server_audit; write the server's logs with simulated times,"
        " labels.json, users.json, config.toml and catalog.toml.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--db", choices=DATABASES, default="postgres", help="server (postgres)")
    p.add_argument(
        "--dsn",
        default=os.environ.get("EXFIL_SIMULATE_DSN"),
        help="use this running local server (superuser DSN) instead of a throwaway one;"
        " default $EXFIL_SIMULATE_DSN (keeps the password out of the process list)",
    )
    p.add_argument("--days", type=int, default=21, help="simulated days (default 21)")
    p.add_argument("--users", type=int, default=50, help="database users (>= 5, default 50)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--scenarios", choices=SCENARIO_SETS, default="campaign", help="scenario set (campaign)"
    )
    p.add_argument("--citizens", type=int, default=30_000, help="rows of citizens (30000)")
    p.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=dt.date(2024, 3, 4),
        help="first simulated day (default 2024-03-04, a Monday)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="size factor of the injected scenarios")
    p.add_argument("--keep-raw", action="store_true", help="also keep the unwarped logs in raw/")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Build the plan the flags describe, run it, print where everything went (to
    ``stream``, default the current ``sys.stdout``)."""
    stream = sys.stdout if stream is None else stream
    from detector.lab.simulation.campaign import campaign_scenarios
    from detector.lab.simulation.org import build_org
    from detector.lab.simulation.plan import build_plan
    from detector.lab.simulation.scenarios import default_scenarios
    from detector.lab.simulation.simulate import simulate

    campaign = args.scenarios == "campaign"
    org = build_org(args.users, args.days, args.seed, args.start, args.citizens, weekly=campaign)
    scenarios = (campaign_scenarios if campaign else default_scenarios)(org, args.scale)
    plan = build_plan(org, scenarios)
    print(
        f"plan: {len(org.users)} users, {org.days} days, {len(plan.sessions):,} sessions,"
        f" {plan.statements:,} statements, {sum(not s.negative for s in scenarios)} threats",
        file=sys.stderr,
    )
    result = simulate(
        plan,
        args.out,
        db=args.db,
        dsn=args.dsn,
        keep_raw=args.keep_raw,
        progress=lambda m: print(m, file=sys.stderr),
    )
    for f in result.logs.all():
        print(f"{f}  {f.stat().st_size:,} bytes", file=stream)
    print(f"{result.out / 'labels.json'}  {len(result.labels)} labels", file=stream)
    print(f"done in {result.seconds:.1f} s", file=stream)
    return 0
