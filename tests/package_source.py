"""streamchat's own source as parsed modules, for tests that check the code base as a whole."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import streamchat

PACKAGE = Path(streamchat.__file__).parent


def parsed_modules() -> Iterator[tuple[Path, ast.Module]]:
    """Every module of the package (the installed copy under test), parsed."""
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
