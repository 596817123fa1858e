"""docs/layout.md matches the tree: every operator module is named there, and every module or
directory it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "druid_access"
LAYOUT = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")


def _named() -> set[str]:
    """The `x.py` and `dir/` names in the operator's table."""
    table = LAYOUT.split("## The operator", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z_]+\.py|[a-z_]+/)`", table))


def test_every_operator_module_is_named() -> None:
    named = _named()
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert modules - named == set(), "add these to docs/layout.md"
    assert packages - named == set(), "add these to docs/layout.md"


def test_everything_named_exists() -> None:
    for name in _named():
        assert (PACKAGE / name.rstrip("/")).exists(), f"docs/layout.md names {name}, which is not there"
    for path in re.findall(r"`((?:tests|testing|bench|hack|crds|deploy|helm|docs)/[^`]*)`", LAYOUT):
        assert (ROOT / path).exists(), f"docs/layout.md names {path}, which is not there"
