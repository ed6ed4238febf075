"""``python -m detector.simulation``: simulate the records office on a real PostgreSQL."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from .org import build_org
from .plan import build_plan
from .scenarios import default_scenarios
from .simulate import simulate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m detector.simulation",
        description="Run a seeded records-office workload with injected exfiltration on a "
        "throwaway PostgreSQL 15 + pgaudit; write its logs (simulated times), labels.json "
        "and users.json.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    p.add_argument("--users", type=int, default=20, help="database users (>= 5, default 20)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--citizens", type=int, default=30_000, help="rows of citizens (30000)")
    p.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=dt.date(2024, 3, 4),
        help="first simulated day (default 2024-03-04, a Monday)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="size factor of the injected scenarios")
    p.add_argument("--keep-raw", action="store_true", help="also keep the unwarped logs in raw/")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    org = build_org(args.users, args.days, args.seed, args.start, args.citizens)
    plan = build_plan(org, default_scenarios(org, args.scale))
    print(
        f"plan: {len(org.users)} users, {org.days} days, {len(plan.sessions)} sessions,"
        f" {plan.statements} statements",
        file=sys.stderr,
    )
    result = simulate(
        plan, args.out, keep_raw=args.keep_raw, progress=lambda m: print(m, file=sys.stderr)
    )
    for f in result.logs.all():
        print(f"{f}  {f.stat().st_size:,} bytes")
    print(f"{result.out / 'labels.json'}  {len(result.labels)} labels")
    print(f"done in {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
