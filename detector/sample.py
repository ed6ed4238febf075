"""The bundled sample: 7 simulated days of a records office on a real PostgreSQL + pgaudit
(``detector/data/sample/``, made by ``scripts/make_sample.py``; ``exfil-detector demo``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_sample() -> Path:
    """Path of the bundled sample audit log."""
    return Path(str(resources.files("detector") / "data" / "sample" / "postgresql.csv"))


def bundled_sample_config() -> Path:
    """Config of the bundled sample (roles of its users, its catalog)."""
    return Path(str(resources.files("detector") / "data" / "sample" / "config.toml"))
