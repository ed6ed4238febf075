"""Produce the bundled sample: a week of a simulated records office on a real PostgreSQL.

Runs the seeded simulator (``detector.lab.simulation``) on a throwaway PostgreSQL 15 + pgaudit
(installed by ``scripts/services/postgres.sh``; needs root or the ``postgres`` user),
checks that every labelled statement is in the log for the labelled user inside the label's
time span, and writes ``detector/data/sample/``:

- ``postgresql.csv``  the server's csvlog, timestamps moved to simulated time
- ``labels.json``     injected threats and hard negatives (scenario, kind, user, start, end)
- ``users.json``      users, roles, habits, client addresses
- ``README.md``       how it was produced, sizes, what each label covers

Usage::

    .venv/bin/python scripts/make_sample.py [--out detector/data/sample] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector.commands.parse import parse_files  # noqa: E402
from detector.config import Config  # noqa: E402
from detector.lab.simulation.org import HABITS, build_org  # noqa: E402
from detector.lab.simulation.plan import build_plan  # noqa: E402
from detector.lab.simulation.scenarios import default_scenarios  # noqa: E402
from detector.lab.simulation.simulate import SimulationResult, simulate  # noqa: E402
from detector.lab.simulation.verify import label_coverage, mismatches  # noqa: E402

#: the sample's configuration (change it and regenerate; the README records it)
USERS, DAYS, SEED, CITIZENS, START = 20, 7, 1, 30_000, dt.date(2024, 3, 4)
COMMAND = ".venv/bin/python scripts/make_sample.py"


def _table(frame: pl.DataFrame) -> str:
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)


def _conf_value(v: str) -> str:
    """A postgresql.conf value as written in the file (quoted unless a bare word)."""
    return v if v.replace(".", "").replace("_", "").isalnum() else f"'{v}'"


def readme(result: SimulationResult, coverage: pl.DataFrame, csv: Path, seconds: float) -> str:
    org = json.loads((result.out / "users.json").read_text())
    run = json.loads((result.out / "run.json").read_text())
    roles = pl.DataFrame([{"user": u["user"], "role": u["role"]} for u in org["users"]])
    counts = dict(roles.group_by("role").len().iter_rows())
    role_counts = ", ".join(f"{counts[r]} {r}" for r in HABITS if r in counts)
    lines = csv.read_bytes().count(b"\n")
    shown = coverage.with_columns(
        pl.col("start").str.slice(0, 16).str.replace("T", " "),
        pl.col("end").str.slice(0, 16).str.replace("T", " "),
    )
    threats = shown.filter(~pl.col("negative")).drop("negative", "matched")
    negatives = (
        shown.filter(pl.col("negative"))
        .group_by("kind", maintain_order=True)
        .agg(
            pl.len().alias("labels"),
            pl.col("user").n_unique().alias("users"),
            pl.col("statements").sum(),
            pl.col("rows").sum(),
        )
    )
    settings = "\n".join(f"    {k} = {_conf_value(v)}" for k, v in run["settings"].items())
    return f"""# Bundled sample: a simulated week of a records office

Written by a real **PostgreSQL {result.server_version}** with **pgaudit {result.pgaudit_version}**
under the seeded workload of `detector/lab/simulation/` (users with habits, nightly jobs,
injected exfiltration), then time-warped: the statements ran as fast as possible
(about {run["run_seconds"]:.0f} s), and afterwards every log line got its simulated time. Apart from
the timestamps (`log_time`, `session_start_time`) the csvlog is byte for byte what the
server wrote. All people are fake; the 18-digit ID numbers have valid GB 11643 check
characters but belong to nobody.

Regenerate (about {seconds:.0f} s on 2 cores; needs `scripts/services/postgres.sh`):

    {COMMAND}

Configuration: seed {SEED}; {DAYS} days from {START} (a Monday; UTC; weekends quieter;
{org["period"]["busy_day"]} is a busy day at twice the volume); `citizens` of {CITIZENS:,}
rows, plus `travel_records` and `hotel_stays`; {USERS} users: {role_counts}.
`users.json` lists every user's role, client address (`127.0.0.N`, one per user), habits
and schedule; `labels.json` the labels (ISO-8601 UTC, `negative: true` for hard negatives).

## File

`postgresql.csv`: {csv.stat().st_size:,} bytes, {lines:,} lines, {run["statements"]:,} statements
in {run["sessions"]:,} sessions. The server wrote the same events as stderr and jsonlog too;
`exfil-detector simulate --scenarios sample --days 7 --users 20 --out DIR` keeps all three.

`config.toml` and `catalog.toml` (kept by hand, not regenerated) are what
`exfil-detector demo` replays the log with: the users' roles (peer groups; `etl` and
`backup` are service accounts) and the sensitivity catalog of the three tables, with row
counts that size pg_dump's `COPY table TO` reads the log counts as 0.

## Injected threats

`statements` are the scenario's planned statements, all found in the log for that user
inside `[start, end]`; `rows` is what pgaudit logged for them (`COPY ... TO` of a whole
table logs 0).

{_table(threats)}

## Hard negatives (normal work that looks unusual)

{_table(negatives)}

## Server settings

{settings}

plus `ALTER ROLE ... SET pgaudit.log_parameter = on` for desk officers and investigators;
no OBJECT audit role. Setup (schema, data, roles) ran as a superuser with audit logging
off, before the log was rotated: the file holds only the office's work.

## Known differences from a real week

- `session_id` (hex of the real backend start time and pid), pids and client ports are the
  real ones; the `session time` in `disconnection` lines is the real (millisecond) duration.
- Sessions that overlap in simulated time ran interleaved on one client thread, so
  statements never ran concurrently.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "detector" / "data" / "sample")
    ap.add_argument("--keep", type=Path, help="keep the full simulation output here")
    args = ap.parse_args(argv)
    started = time.monotonic()
    org = build_org(USERS, DAYS, SEED, START, CITIZENS)
    plan = build_plan(org, default_scenarios(org))
    work = args.keep or Path(tempfile.mkdtemp(prefix="exfil-sample-"))
    try:
        result = simulate(plan, work, progress=lambda m: print(m, file=sys.stderr))
        events, _ = parse_files([result.csv], Config(), out=None, dead_letter=None)
        coverage = label_coverage(plan.sessions, events, result.labels)
        if problems := mismatches(coverage):
            print("labels do not match the log:", *problems, sep="\n  ", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        csv = args.out / "postgresql.csv"
        shutil.copyfile(result.csv, csv)
        for name in ("labels.json", "users.json"):
            shutil.copyfile(work / name, args.out / name)
        seconds = time.monotonic() - started
        (args.out / "README.md").write_text(readme(result, coverage, csv, seconds))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    for p in sorted(args.out.iterdir()):
        print(f"{p}  {p.stat().st_size:,} bytes")
    print(f"done in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
