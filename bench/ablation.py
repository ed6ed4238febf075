"""Benchmark: what each online model earns, by taking it away (issue 16).

For each simulated set (given with ``--logs DIR``, or simulated like
``bench/detection_quality.py`` with ``--sets DB:SEED:USERS:DAYS``), runs
``exfil-detector evaluate --no-baselines`` once per variant:

- ``full``: the detector as shipped, the set's own config (roles of every user);
- ``-multivariate``: without river HalfSpaceTrees (its term in matched windows' scores);
- ``-peer-clusters``: without scikit-learn's learned peer groups;
- ``-roles``: no configured roles or service roles (a deployment before anyone wrote its
  ``[peers]``), so learned peer groups are what users are compared with;
- ``-roles -peer-clusters``: the same without learned peer groups: everyone with everyone.

Prints one table per set (caught, false alerts per 100 active user-days, median delays) and
writes them into bench/RESULTS.md between the ``ablation`` markers (the rest of the file is
``detection_quality.py``'s).

Usage::

    .venv/bin/python bench/ablation.py --logs /tmp/sets/postgres-seed11-50u-21d ...
    .venv/bin/python bench/ablation.py --sets postgres:11:50:21 mariadb:37:55:21
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "detector"]
VARIANTS: dict[str, list[str]] = {
    "full": [],
    "-multivariate": ["multivariate"],
    "-peer-clusters": ["peer-clusters"],
    "-roles": ["roles"],
    "-roles -peer-clusters": ["roles", "peer-clusters"],
    "-roles -multivariate": ["roles", "multivariate"],
}
BEGIN, END = "<!-- ablation: bench/ablation.py -->", "<!-- /ablation -->"


def _run(args: list[str]) -> None:
    print("$", shlex.join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def _delay(part: dict[str, Any]) -> str:
    s = part.get("median_delay_s")
    if s is None:
        return "-"
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def _row(variant: str, ours: dict[str, Any]) -> str:
    overall, burst = ours["overall"], ours["burst"]
    slow = next((k for k in ours["kinds"] if k["kind"] == "low_and_slow"), {})
    missed = [f"{k['kind']} {k['caught']}/{k['total']}" for k in ours["kinds"]
              if k["caught"] < k["total"]]  # fmt: skip
    return (
        f"| {variant} | {overall['caught']}/{overall['total']} | {ours['false_per_100']:.2f} "
        f"({ours['false_pairs']} / {ours['active_user_days']}) | {_delay(burst)} | "
        f"{_delay(slow)} | {ours['alerts']} | {', '.join(missed) or '-'} |"
    )


def evaluate_set(logs: Path) -> str:
    """The variants' table of one set (Markdown)."""
    rows = []
    for variant, without in VARIANTS.items():
        out = logs / f"ablation{'-'.join(['', *without])}.json"
        args = [*CLI, "evaluate", "--logs", str(logs), "--no-baselines", "--quiet"]
        args += [a for w in without for a in ("--without", w)] + ["--json", str(out)]
        _run(args)
        data = json.loads(out.read_text(encoding="utf-8"))
        rows.append(_row(variant, data["detectors"][0]))
    head = (
        f"### {logs.name}: {data['users']} users, {data['statements']:,} statements "
        f"({data['db']})\n\n"
        "| variant | caught | false / 100 user-days (pairs / user-days) | median delay, burst "
        "| median delay, low-and-slow | alerts | missed |\n|---|---|---|---|---|---|---|"
    )
    return "\n".join([head, *rows])


def _simulate(spec: str, base: Path) -> Path:
    db, seed, users, days = spec.split(":")
    out = base / f"{db}-seed{seed}-{users}u-{days}d"
    _run([*CLI, "simulate", "--db", db, "--seed", seed, "--users", users, "--days", days,
          "--out", str(out)])  # fmt: skip
    return out


def write_section(results: Path, text: str) -> None:
    """``text`` between the markers of ``results`` (appended when they are not there)."""
    old = results.read_text(encoding="utf-8") if results.is_file() else ""
    section = f"{BEGIN}\n{text.rstrip()}\n{END}\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + section + rest.split(END, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + section
    results.write_text(new, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", type=Path, nargs="*", default=[], metavar="DIR")
    ap.add_argument("--sets", nargs="*", default=[], metavar="DB:SEED:USERS:DAYS")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = ap.parse_args()
    if not args.logs and not args.sets:
        ap.error("give --logs DIR ... or --sets DB:SEED:USERS:DAYS ...")
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="exfil-ablation-"))
    dirs = [*args.logs, *(_simulate(s, base) for s in args.sets)]
    tables = [evaluate_set(d) for d in dirs]
    minutes = (time.monotonic() - started) / 60
    command = shlex.join(["python", "bench/ablation.py", *(["--sets", *args.sets] if args.sets
                          else ["--logs", *(str(d) for d in args.logs)])])  # fmt: skip
    text = (
        "## What each online model earns (ablations)\n\n"
        f"Produced by `{command}` ({minutes:.0f} min on this machine): "
        "`exfil-detector evaluate --no-baselines --without PART` per variant, same logs, "
        "same scoring rules as above.\n\n" + "\n\n".join(tables)
    )
    print(text)
    write_section(args.results, text)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
