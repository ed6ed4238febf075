"""Benchmark: ``exfil-detector run`` from a Kafka topic to alerts, on a real broker.

Starts a throwaway single-node broker (``scripts/kafka.sh``), writes a csvlog with the
replay benchmark's generator (the bundled sample's sessions replayed for ``--users``
synthetic users over ``--days`` days), ships it with ``exfil-detector ship`` to a
6-partition topic, then measures, everything on this machine's cores (broker and, in the
second part, the producer share them with the detector; say so when quoting figures):

1. sustained throughput: one detector process (``run_stream``, in this process) drains the
   pre-filled topic; records/s and statements/s from its first to its last record;
2. latency and lag: a fresh topic is shipped at ``--rate`` records/s (``ship --rate``)
   while the detector consumes it; p50/p99 of the time from each record's produce
   timestamp to the end of the loop turn that judged it, and the records behind the
   topic's end, over time.

Targets (issue 5): >= 50,000 audit events/s through one detector process; p99 alert
latency <= 5 s at 10,000 events/s.

Usage: ``.venv/bin/python bench/stream_throughput.py [--lines 300000] [--users 10000]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from replay_throughput import choose_split, write_config, write_csvlog  # noqa: E402

from detector.config import load_config  # noqa: E402
from detector.streaming.options import RunSummary, StreamOptions  # noqa: E402
from detector.streaming.runner import run_stream  # noqa: E402

CLI = [sys.executable, "-m", "detector"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ship(log: Path, bootstrap: str, topic: str, rate: int | None = None) -> float:
    cmd = [*CLI, "ship", str(log), "--bootstrap", bootstrap, "--topic", topic]
    cmd += ["--create-partitions", "6"]
    if rate:
        cmd += ["--rate", str(rate)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def _consume(cfg: Path, bootstrap: str, topic: str, until_idle: float) -> RunSummary:
    config = load_config(cfg)
    options = StreamOptions(
        topic=topic,
        group=f"bench-{topic}",
        alerts_topic=f"{topic}-alerts",
        dlq_topic=f"{topic}-dlq",
        until_idle=until_idle,
        idle_flush_seconds=1.0,
        checkpoint_seconds=10.0,
        measure=True,
    )
    return run_stream(config, config.kafka_settings(bootstrap), options)


def _busy_seconds(summary: RunSummary) -> float:
    """From the first to the last loop turn that read records (the idle tail excluded)."""
    if summary.busy is None or summary.busy[1] <= summary.busy[0]:
        return summary.seconds
    return summary.busy[1] - summary.busy[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=300_000, help="csvlog lines to generate")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--rate", type=int, default=10_000, help="records/s for the latency run")
    ap.add_argument("--latency-seconds", type=int, default=20, help="length of that run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="exfil-stream-bench-") as tmp:
        work = Path(tmp)
        _, pieces = choose_split(args.lines, args.users)
        log, cfg = work / "audit.csv", work / "config.toml"
        write_csvlog(log, args.lines, args.users, pieces, args.days)
        write_config(cfg)
        port = _free_port()
        broker = ROOT / "scripts" / "kafka.sh"
        subprocess.run(["bash", str(broker), "start", str(work / "kafka"), str(port)],
                       check=True, capture_output=True)  # fmt: skip
        bootstrap = f"127.0.0.1:{port}"
        try:
            shipped = _ship(log, bootstrap, "bench-full")
            full = _consume(cfg, bootstrap, "bench-full", until_idle=3.0)
            busy = _busy_seconds(full)
            part = work / "paced.csv"
            lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
            part.write_text("".join(lines[: args.rate * args.latency_seconds]), encoding="utf-8")
            result: list[RunSummary] = []
            worker = threading.Thread(
                target=lambda: result.append(_consume(cfg, bootstrap, "bench-paced", 5.0))
            )
            ship_thread = threading.Thread(
                target=lambda: _ship(part, bootstrap, "bench-paced", rate=args.rate)
            )
            ship_thread.start()
            time.sleep(1.0)  # the topic exists before the consumer subscribes
            worker.start()
            ship_thread.join()
            worker.join()
            paced = result[0]
        finally:
            subprocess.run(["bash", str(broker), "stop", str(work / "kafka")],
                           check=False, capture_output=True)  # fmt: skip
    quantiles = statistics.quantiles(paced.latency_ms, n=100) if paced.latency_ms else [0.0] * 99
    figures = {
        "records": full.records,
        "statements": full.counts.get("statements", 0),
        "ship_seconds": round(shipped, 2),
        "consume_seconds": round(busy, 2),
        "records_per_s": round(full.records / busy),
        "statements_per_s": round(full.counts.get("statements", 0) / busy),
        "alerts": len(full.alerts),
        "paced_rate": args.rate,
        "paced_records": paced.records,
        "latency_p50_ms": round(quantiles[49]),
        "latency_p99_ms": round(quantiles[98]),
        "max_lag_records": max((b for _, b in paced.lag), default=0),
    }
    print(json.dumps(figures, indent=2))
    print(
        f"\nsustained: {figures['records_per_s']:,} records/s "
        f"({figures['statements_per_s']:,} statements/s) through one detector process, "
        f"broker on the same 2 cores; target >= 50,000 events/s "
        f"{'PASS' if figures['records_per_s'] >= 50_000 else 'MISS'}"
    )
    print(
        f"latency at {args.rate:,} records/s (producer, broker and detector on the same "
        f"cores): p50 {figures['latency_p50_ms']:,} ms, p99 {figures['latency_p99_ms']:,} ms; "
        f"target p99 <= 5,000 ms {'PASS' if figures['latency_p99_ms'] <= 5000 else 'MISS'}; "
        f"most records behind {figures['max_lag_records']:,}"
    )
    step = max(1, len(paced.lag) // 12)
    print("lag over time (s, records behind): " + ", ".join(
        f"{t:.0f}:{b}" for t, b in paced.lag[::step]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
