"""The package's shape, checked statically (ast, in-process, no import of streamchat's modules):

- the core (the chat service, the turn loop, providers, conversation, events, the log) imports no
  front-end module (terminal UI, sinks, renderer, REPL, CLI) and no UI library (Rich,
  prompt_toolkit, Typer) — not directly, not under TYPE_CHECKING, and not through any streamchat
  module it imports; notices and busy states reach a front end through `events.FrontEnd`;
- streamchat's import graph has no cycle.

How imports count. An edge is an import statement naming a streamchat module, wherever it stands:
at module level or inside a function (deferring an import keeps start-up cheap; it does not make a
cycle or a layering breach acceptable, it only hides it from the interpreter). Imports under
`if TYPE_CHECKING:` never run, so they are no edge for cycles (a module may name another's types
in annotations); the core's own files may not use them to name front-end types either. The implicit
import of a package's `__init__` when one of its modules loads is not an edge.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "streamchat"

CORE = ("streamchat.service", "streamchat.session", "streamchat.providers", "streamchat.conversation",
        "streamchat.events", "streamchat.records", "streamchat.store", "streamchat.store_schema",
        "streamchat.compaction", "streamchat.config", "streamchat.cost", "streamchat.errors")
FRONT_ENDS = ("streamchat.ui", "streamchat.sinks", "streamchat.render", "streamchat.repl", "streamchat.repl_commands",
              "streamchat.cli", "streamchat.chat", "streamchat.structured", "streamchat.typeahead",
              "streamchat.shell_mode", "streamchat.history", "streamchat.serve")
UI_LIBRARIES = ("rich", "prompt_toolkit", "typer", "click")


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return guarded


@cache
def imports(module: str) -> tuple[tuple[str, bool], ...]:
    """(imported name, under TYPE_CHECKING) for every import in `module`'s file: a streamchat module's
    full name, or an outside package's top-level name."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from streamchat import signals` imports the module streamchat.signals
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base for a in node.names]
        found += [(_resolve(name), id(node) in guarded) for name in names]
    return tuple(dict.fromkeys(found))


def _resolve(name: str) -> str:
    if not _under(name, ("streamchat",)):
        return name.split(".")[0]
    while name not in modules():
        name = name.rpartition(".")[0]
    return name


def runtime_edges(module: str) -> set[str]:
    return {name for name, typing_only in imports(module)
            if not typing_only and _under(name, ("streamchat",)) and name != module}


def test_the_scan_sees_the_package_and_its_imports():
    """The checks below are only as good as the graph: it must hold the modules and the known edges,
    function-local ones included (api imports the store inside a function)."""
    assert {"streamchat.service", "streamchat.serve.app", "streamchat.providers.base"} <= set(modules())
    assert "streamchat.session" in runtime_edges("streamchat.service")
    assert "streamchat.store" in runtime_edges("streamchat.api")  # a function-local import
    assert ("streamchat.repl", True) in imports("streamchat.repl_commands")  # TYPE_CHECKING, not an edge
    assert "streamchat.repl" not in runtime_edges("streamchat.repl_commands")
    assert "rich" in dict(imports("streamchat.sinks.live_region"))


def test_the_core_imports_no_front_end_module_nor_ui_library():
    core = [m for m in modules() if _under(m, CORE)]
    breaches = [f"{m} imports {name}" + (" (under TYPE_CHECKING)" if typing_only else "")
                for m in core for name, typing_only in imports(m)
                if _under(name, FRONT_ENDS) or name in UI_LIBRARIES]
    assert breaches == []


def test_nothing_the_core_imports_reaches_a_front_end_or_ui_library():
    """Through every streamchat module the core imports (at run time), transitively."""
    reached: dict[str, str] = {m: m for m in modules() if _under(m, CORE)}  # module -> the core module it came from
    path: dict[str, str] = {}
    todo = list(reached)
    while todo:
        module = todo.pop()
        for name in runtime_edges(module):
            if name not in reached:
                reached[name], path[name] = reached[module], module
                todo.append(name)

    def chain(module: str) -> str:
        links = [module]
        while links[-1] in path:
            links.append(path[links[-1]])
        return " <- ".join(links)

    breaches = [chain(m) for m in reached if _under(m, FRONT_ENDS)]
    breaches += [f"{lib} <- {chain(m)}" for m in reached for lib, typing_only in imports(m)
                 if lib in UI_LIBRARIES and not typing_only]
    assert breaches == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's cycles: its strongly connected components of more than one node (Tarjan's,
    iteratively, so no recursion limit applies)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in sorted(graph):
        if root in index:
            continue
        enter(root)
        work = [(root, iter(sorted(graph[root])))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    enter(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_import_graph_has_no_cycle():
    graph = {m: runtime_edges(m) for m in modules()}
    described = [" ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in strongly_connected(graph)]
    assert described == []
