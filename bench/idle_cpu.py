"""Benchmark: what an idle ``exfil-detector run`` costs (issue 15: "idle means idle").

Starts a throwaway single-node broker (``scripts/kafka.sh``), ships the bundled sample to
a 6-partition topic, starts ``run`` on it (with ``--state-dir`` and its metrics and probes
served), waits until ``/readyz`` says it owns the six partitions and is caught up, then
lets it settle (``--settle``: past its idle flush and the checkpoint that follows), then
samples the CPU time of the ``run`` process and of its fetcher process from
``/proc/PID/stat`` over ``--seconds`` seconds. Nothing arrives meanwhile: the detector
only keeps its group membership, its fetcher long-polls, its loop turns.

Target: well under 5% of one core for both processes together (PASS below 5%).

Usage: ``.venv/bin/python bench/idle_cpu.py [--seconds 60]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from kafka_io import wait_ready  # noqa: E402
from realdb.kafka import free_port  # noqa: E402

CLI = [sys.executable, "-m", "detector"]
TARGET = 5.0  # % of one core


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=35.0, help="seconds after ready")
    args = parser.parse_args()
    sample = ROOT / "detector" / "data" / "sample"
    with tempfile.TemporaryDirectory(prefix="exfil-idle-") as tmp:
        work = Path(tmp)
        port = free_port()
        broker = ROOT / "scripts" / "kafka.sh"
        subprocess.run(["bash", str(broker), "start", str(work / "kafka"), str(port)],
                       check=True, capture_output=True, timeout=180)  # fmt: skip
        proc = None
        try:
            bootstrap = f"127.0.0.1:{port}"
            subprocess.run([*CLI, "ship", str(sample / "postgresql.csv"), "--bootstrap",
                            bootstrap, "--topic", "idle", "--create-partitions", "6"],
                           check=True, capture_output=True, timeout=120)  # fmt: skip
            probes = free_port()
            proc = subprocess.Popen(
                [*CLI, "run", "--bootstrap", bootstrap, "--topic", "idle", "--config",
                 str(sample / "config.toml"), "--state-dir", str(work / "state"),
                 "--metrics-port", str(probes)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            wait_ready(proc, probes, True, "6 partitions, 0 records behind", seconds=120)
            # steady state: past the idle flush (5 s) and the one checkpoint it makes due
            # (30 s); from then on nothing changes, and nothing is written
            time.sleep(args.settle)
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                      text=True, check=True).stdout.split()  # fmt: skip
            pids = [proc.pid, *map(int, children)]
            before = [_cpu_seconds(p) for p in pids]
            started = time.monotonic()
            time.sleep(args.seconds)
            spent = [_cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
            wall = time.monotonic() - started
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
            subprocess.run(["bash", str(broker), "stop", str(work / "kafka")],
                           capture_output=True, timeout=120, check=False)  # fmt: skip
    share = [100.0 * s / wall for s in spent]
    total = sum(share)
    print(f"idle run over {wall:.0f} s (2 cores, broker on the same machine):")
    print(f"  run process      {share[0]:5.2f} % of a core")
    for k, s in enumerate(share[1:], 1):
        print(f"  fetcher process  {s:5.2f} % of a core" if k == 1 else f"  child {k} {s:5.2f} %")
    verdict = "PASS" if total < TARGET else "MISS"
    print(f"  together         {total:5.2f} % of a core  (target < {TARGET:.0f} %: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
