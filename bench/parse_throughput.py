"""Benchmark: ``exfil-detector parse`` on a large pgaudit csvlog vs ``polars.read_csv``.

Writes a csvlog of ``--lines`` lines by replaying the sessions of the committed real
PostgreSQL 15 + pgaudit snapshot (tests/data/real/pg/pgbadger-prefix.csv) with fresh
times, pids and session ids, so the mix (relation duplicates, multi-line statements,
connections, errors, bound parameters) is what a real server writes. Then, in this one
run, each in its own child process so peak memory is measured per step:

1. the floor: plain ``polars.read_csv`` of the same file (all columns, no header);
2. ``exfil-detector parse FILE --out events.parquet``.

Prints lines/s, wall time and peak RSS of both and their ratio. Target (ingestion
issue): parse at no less than 1/3 of the floor's speed.

Usage: ``.venv/bin/python bench/parse_throughput.py [--lines 2000000] [--keep]``
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import statistics
import tempfile
import time
from pathlib import Path

from child import run_child

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "data" / "real" / "pg" / "pgbadger-prefix.csv"


def _sessions(rows: list[list[str]]) -> list[list[list[str]]]:
    by_session: dict[str, list[list[str]]] = {}
    for row in rows:
        by_session.setdefault(row[5], []).append(row)
    return list(by_session.values())


def write_csvlog(path: Path, lines: int) -> int:
    """Write at least ``lines`` physical lines of csvlog; return the exact count."""
    rows = list(csv.reader(io.StringIO(SNAPSHOT.read_text(encoding="utf-8"))))
    sessions = _sessions(rows)
    start = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
    written = 0
    clock = 0
    pid = 20_000
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    with path.open("w", encoding="utf-8") as out:
        while written < lines:
            for session in sessions:
                pid += 1
                session_id = f"{int(start.timestamp()) + clock // 1000:x}.{pid:x}"
                for n, row in enumerate(session, start=1):
                    clock += 7  # ms
                    ts = start + dt.timedelta(milliseconds=clock)
                    new = list(row)
                    new[0] = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d} UTC"
                    new[3] = str(pid)
                    new[5] = session_id
                    new[6] = str(n)
                    if new[4].startswith("127.0.0.1:"):
                        new[4] = f"127.0.0.1:{30000 + pid % 30000}"
                    writer.writerow(new)
                    written += 1 + sum(field.count("\n") for field in new)
            out.write(buf.getvalue())
            buf.seek(0)
            buf.truncate()
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs of each")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="exfil-bench-"))
    log = tmp / "postgresql.csv"
    t0 = time.perf_counter()
    lines = write_csvlog(log, args.lines)
    size = log.stat().st_size
    print(f"generated {lines:,} lines, {size / 1e6:,.0f} MB in {time.perf_counter() - t0:.1f} s")

    floor_code = (
        "import polars as pl, time\nt = time.perf_counter()\n"
        f"df = pl.read_csv({str(log)!r}, has_header=False, infer_schema=False)\n"
        "print(df.height, time.perf_counter() - t)"
    )
    parse_code = (
        "import time\nfrom detector.commands.cli import main\nt = time.perf_counter()\n"
        f"main(['parse', {str(log)!r}, '--out', {str(tmp / 'events.parquet')!r}])\n"
        "print('SECONDS', time.perf_counter() - t)"
    )
    # The machine is shared and noisy: run floor and parse alternately and compare the
    # best of each, and show the median too.
    floors: list[float] = []
    parses: list[float] = []
    floor_rss = parse_rss = 0
    summary = records = ""
    for _ in range(args.repeat):
        floor_out, rss = run_child(floor_code)
        records, floor_text = floor_out.split()
        floors.append(float(floor_text))
        floor_rss = max(floor_rss, rss)
        parse_out, rss = run_child(parse_code)
        summary, parse_text = parse_out.rsplit("SECONDS", 1)
        parses.append(float(parse_text))
        parse_rss = max(parse_rss, rss)

    print(summary.rstrip())
    print()
    print(f"{args.repeat} alternating runs each; best (median) seconds")
    print(f"{'':24}{'seconds':>16}{'lines/s':>12}{'peak RSS':>12}")
    for label, times, rss in (
        ("polars.read_csv floor", floors, floor_rss),
        ("exfil-detector parse", parses, parse_rss),
    ):
        best, median = min(times), statistics.median(times)
        print(f"{label:24}{best:>7.2f} ({median:5.2f}){lines / best:>12,.0f}"
              f"{rss / 2**20:>9,.0f} MB")  # fmt: skip
    ratio, median_ratio = (
        min(floors) / min(parses),
        statistics.median(floors) / statistics.median(parses),
    )
    verdict = "PASS" if ratio >= 1 / 3 else "MISS"
    print(
        f"parse speed / floor speed = {ratio:.3f} best, {median_ratio:.3f} median "
        f"(target >= 1/3: {verdict}; {records} csv records)"
    )
    if not args.keep:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    else:
        print(f"files kept in {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
