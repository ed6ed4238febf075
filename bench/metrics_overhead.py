"""Benchmark: what Prometheus metrics cost the pipeline (issue 6: at most 3%).

Writes a csvlog with the replay benchmark's generator, then replays it in this process
alternately without metrics and with metrics (a :class:`detector.metrics.Metrics`
registry counting every batch, score and alert, and its ``/metrics`` endpoint scraped
every second by a thread, as Prometheus would), ``--repeat`` times each, and prints the
median wall times and their ratio. Runs alternate so that the machine's noise falls on
both sides; the first run of each (imports, caches) is discarded.

Usage: ``.venv/bin/python bench/metrics_overhead.py [--lines 300000] [--repeat 4]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from replay_throughput import choose_split, write_config, write_csvlog  # noqa: E402

from detector.config import load_config  # noqa: E402
from detector.metrics import Metrics  # noqa: E402
from detector.metrics_server import MetricsServer  # noqa: E402
from detector.replay import replay_files  # noqa: E402


def _replay(log: Path, cfg: Path, metrics: Metrics | None) -> float:
    config = load_config(cfg)
    server = stop = None
    if metrics is not None:
        server = MetricsServer(metrics, 0, "127.0.0.1")
        stop = threading.Event()
        url = f"http://127.0.0.1:{server.port}/metrics"

        def scrape() -> None:
            while not stop.wait(1.0):
                with urllib.request.urlopen(url) as response:
                    response.read()

        threading.Thread(target=scrape, daemon=True).start()
    started = time.perf_counter()
    replay_files([log], config, progress=None, metrics=metrics)
    seconds = time.perf_counter() - started
    if server is not None and stop is not None:
        stop.set()
        server.close()
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="exfil-metrics-bench-") as tmp:
        log, cfg = Path(tmp) / "audit.csv", Path(tmp) / "config.toml"
        _, pieces = choose_split(args.lines, args.users)
        write_csvlog(log, args.lines, args.users, pieces, 3)
        write_config(cfg)
        _replay(log, cfg, None)  # warm-up: imports, sqlglot caches
        _replay(log, cfg, Metrics())
        plain: list[float] = []
        metered: list[float] = []
        for _ in range(args.repeat):
            plain.append(_replay(log, cfg, None))
            metered.append(_replay(log, cfg, Metrics()))
    p, m = statistics.median(plain), statistics.median(metered)
    overhead = (m / p - 1) * 100
    print(f"replay of {args.lines:,} lines, {args.users:,} users, medians of {args.repeat}:")
    print(f"  without metrics  {p:8.2f} s   ({', '.join(f'{x:.2f}' for x in plain)})")
    print(f"  with metrics     {m:8.2f} s   ({', '.join(f'{x:.2f}' for x in metered)})")
    verdict = "PASS" if overhead <= 3.0 else "MISS"
    print(f"  overhead {overhead:+.1f}% (target <= 3%): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
