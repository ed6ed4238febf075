"""Where the shared public corpus lives (read-only, beside the repository)."""

from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
