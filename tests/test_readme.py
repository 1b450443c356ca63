"""The README's architecture map is the project's own: every package and top-level module is on it."""

from __future__ import annotations

import re
from pathlib import Path

import gateway

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(gateway.__file__).resolve().parent


def architecture_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Architecture"):text.index("## The life of a query")]
    match = re.search(r"```\n(gateway/.*?)```", section, re.S)
    assert match, "the architecture section holds the tree in a code block"
    return match.group(1)


def test_every_package_and_top_level_module_is_on_the_map() -> None:
    block = architecture_block()
    names = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    names += [p.name + "/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    missing = sorted(n for n in names if not re.search(rf"^\s+{re.escape(n)}\s", block, re.M))
    assert missing == [], f"not on the README's map: {missing}"


def test_every_module_named_on_the_map_exists() -> None:
    """A module named on the map (`name.py`) is somewhere in the package: the map tells no tales."""
    block = architecture_block()
    named = set(re.findall(r"\b(\w+\.py)\b", block))
    present = {p.name for p in PACKAGE.rglob("*.py")} | {p.name for p in (ROOT / "tests").glob("*.py")}
    assert sorted(named - present) == []
