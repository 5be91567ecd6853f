"""Every third-party module streamchat (and its tests) imports is a declared dependency of the part that imports it."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

from package_source import PACKAGE, parsed_modules

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = PACKAGE.parent
TESTS = Path(__file__).parent
EXTRA_FILES = {"serve": ("serve/", "cli/_serve.py", "access/redis_state.py", "providers/_ahttp.py"),  # only with that extra
               "local": ("providers/local.py",)}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, set[str]]:
    """pyproject's requirement names: "" for the core dependencies, else by extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {extra: {_norm(re.match(r"[A-Za-z0-9._-]+", req)[0]) for req in reqs} for extra, reqs in groups.items()}


def imported(tree: ast.Module) -> set[str]:
    """Top-level names of the absolute imports in `tree`, wherever they stand (lazy ones too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@functools.cache
def _providers() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed distribution's file list


def distributions(module: str) -> set[str]:
    """The distributions that provide `module` here (its own name when it is not installed, e.g. tomli on 3.11)."""
    return {_norm(d) for d in _providers().get(module, [module])}


def _undeclared(module: str, allowed: set[str]) -> bool:
    return module not in sys.stdlib_module_names and module != "streamchat" and not distributions(module) & allowed


def test_streamchat_imports_only_declared_dependencies():
    deps = declared()
    found = {}
    for path, tree in parsed_modules():
        where = path.relative_to(PACKAGE).as_posix()
        extra = next((name for name, files in EXTRA_FILES.items() if where.startswith(files)), None)
        allowed = deps[""] | (deps[extra] if extra else set())
        for module in imported(tree):
            found[module] = where
            assert not _undeclared(module, allowed), f"{where} imports {module}: declare its distribution in pyproject.toml"
    assert {"httpx2", "markdown_it", "pygments", "h11", "starlette"} <= set(found), "the scan misses imports"


def test_tests_import_only_declared_dependencies():
    deps = declared()
    everything = set().union(*deps.values())
    local = {path.stem for path in TESTS.glob("*.py")}
    for path in sorted(TESTS.glob("*.py")):
        for module in imported(ast.parse(path.read_text(encoding="utf-8"))) - local:
            assert not _undeclared(module, everything), f"tests/{path.name} imports {module}: declare it in the test extra"


def test_sdk_and_renderer_versions_are_bounded_below_the_next_major():
    """The SDKs and Rich are used through internals (tests/test_library_internals.py pins them): an
    install must not pick a next major these tests never saw."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["serve"]
    for name in ("openai", "anthropic", "rich", "uvicorn"):
        spec = next(r for r in reqs if re.match(rf"{name}\s*[<>=]", r))
        installed = importlib.metadata.version(name)
        bound = re.search(r"<\s*([\d.]+)", spec)
        assert bound, f"{spec}: no upper bound"
        major = int(installed.split(".")[0])
        assert bound[1] == str(major + 1), f"{spec}: the bound should be the major after the installed {installed}"
