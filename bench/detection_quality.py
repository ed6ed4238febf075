"""Benchmark: detection quality on simulated sets, against five baselines (issue 4).

For each set (database, seed, users, days), runs ``exfil-detector simulate`` (a real
throwaway PostgreSQL 15 + pgaudit or MariaDB + server_audit, the evaluation campaign:
every threat kind every week after a 3-day warm-up) and then ``exfil-detector evaluate``
on its output, which replays the logs through the detector and computes the five
baselines on the same logs. Prints each set's table and writes all of them, with the
command that produced them, to ``bench/RESULTS.md``.

Targets (issue 4), on at least three sets with different seeds and sizes (>= 50 users,
>= 3 weeks each, PostgreSQL and MariaDB): every scenario kind caught in every set; false
alerts <= 0.5 (user, day) pairs per 100 user-days after a warm-up of at most 3 days;
median delay <= 5 minutes for burst scenarios and <= 1 day for low-and-slow; better than
every baseline on both hit rate and false alarms.

Usage::

    .venv/bin/python bench/detection_quality.py            # the default three sets, ~5 min
    .venv/bin/python bench/detection_quality.py --sets postgres:11:50:21 --keep /tmp/sets

A set is ``DB:SEED:USERS:DAYS``. Simulated outputs go to a temp dir (or ``--keep DIR``).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detector.lab.evaluation.report import read_json, render_markdown  # noqa: E402

ABLATION_BEGIN = "<!-- ablation: bench/ablation.py -->"
DEFAULT_SETS = ("postgres:11:50:21", "postgres:23:60:28", "mariadb:37:55:21")
CLI = [sys.executable, "-m", "detector"]


@dataclass(frozen=True)
class SetSpec:
    """One simulated set."""

    db: str
    seed: int
    users: int
    days: int

    @classmethod
    def parse(cls, text: str) -> SetSpec:
        db, seed, users, days = text.split(":")
        return cls(db, int(seed), int(users), int(days))

    @property
    def name(self) -> str:
        return f"{self.db}-seed{self.seed}-{self.users}u-{self.days}d"


def _run(args: list[str]) -> None:
    print("$", shlex.join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), metavar="DB:SEED:USERS:DAYS")
    ap.add_argument("--keep", type=Path, default=None, help="keep simulated sets in this dir")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = ap.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="exfil-quality-"))
    base.mkdir(parents=True, exist_ok=True)
    results = []
    started = time.monotonic()
    for spec in map(SetSpec.parse, args.sets):
        out = base / spec.name
        _run([*CLI, "simulate", "--db", spec.db, "--seed", str(spec.seed), "--users",
              str(spec.users), "--days", str(spec.days), "--out", str(out)])  # fmt: skip
        _run([*CLI, "evaluate", "--logs", str(out), "--json", str(out / "evaluation.json")])
        results.append(read_json(out / "evaluation.json"))
    minutes = (time.monotonic() - started) / 60
    command = shlex.join(["python", "bench/detection_quality.py", "--sets", *args.sets])
    text = render_markdown(results)
    # bench/ablation.py's section (between its markers) stays
    old = args.results.read_text(encoding="utf-8") if args.results.is_file() else ""
    kept = ""
    if ABLATION_BEGIN in old:
        kept = "\n" + ABLATION_BEGIN + old.split(ABLATION_BEGIN, 1)[1]
    args.results.write_text(
        "# Detection quality on simulated sets\n\n"
        f"Produced by `{command}` ({minutes:.0f} min on this machine). Each set is a fresh\n"
        "simulation (`exfil-detector simulate --db DB --seed S --users U --days D`) of the\n"
        "evaluation campaign, scored by `exfil-detector evaluate --logs DIR`.\n\n" + text + kept,
        encoding="utf-8",
    )
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
