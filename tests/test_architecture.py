"""ARCHITECTURE.md stays true: every module of the four packages has its line there, and
no line names a module that is gone."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "features", "models", "detector")
DOC = ROOT / "ARCHITECTURE.md"


def _sections() -> dict[str, str]:
    """Each package's part of the document: from its ``## pkg/`` heading to the next
    package's (the sections between, like "Streaming on Kafka", belong to the one above)."""
    text = DOC.read_text(encoding="utf-8")
    starts = sorted((m.start(), m.group(1)) for m in re.finditer(r"^## (\w+)/", text, re.M))
    bounds = [*starts, (len(text), "")]
    return {pkg: text[a:b] for (a, pkg), (b, _) in itertools.pairwise(bounds)}


def _modules(pkg: str) -> list[str]:
    base = ROOT / pkg
    return sorted(
        str(p.relative_to(base))
        for p in base.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts
    )


def test_every_module_has_its_line_in_architecture_md() -> None:
    sections = _sections()
    missing = [
        f"{pkg}/{module}"
        for pkg in PACKAGES
        for module in _modules(pkg)
        if f"`{module}`" not in sections.get(pkg, "")
    ]
    assert not missing, (
        f"modules missing from ARCHITECTURE.md (as `path` in their package's section): {missing}"
    )


def test_architecture_md_names_no_module_that_is_gone() -> None:
    sections = _sections()
    gone = []
    for pkg in PACKAGES:
        named = re.findall(r"^\| `([\w/]+\.py)`", sections.get(pkg, ""), re.M)
        gone += [f"{pkg}/{m}" for m in named if not (ROOT / pkg / m).is_file()]
    assert not gone, f"ARCHITECTURE.md names modules that do not exist: {gone}"
