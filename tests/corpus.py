"""Where the tests' public corpus samples live: inside the repository (see its SOURCES.md)."""

from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
