"""``python -m detector.lab.simulation``: the same command as ``exfil-detector simulate``."""

from __future__ import annotations

import sys

from detector.commands.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["simulate", *sys.argv[1:]]))
