"""Run one benchmark step in a fresh interpreter, so its peak memory is its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_RSS = "import resource; print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def run_child(code: str) -> tuple[str, int]:
    """Run ``code`` in a fresh interpreter (in the repo root); return its stdout and its own
    peak RSS in bytes. A failing child ends the benchmark with its output."""
    done = subprocess.run(
        [sys.executable, "-c", code + "\n" + _RSS],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0 or "RSS" not in done.stdout:
        sys.exit(f"child failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    out, rss = done.stdout.rsplit("RSS", 1)
    return out, int(rss) * 1024
