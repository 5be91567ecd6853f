"""Every exit code the program can end with is an `ExitStatus` member, and `--help` and README list them all."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from package_source import PACKAGE, parsed_modules

from streamchat import signals
from streamchat.exit_status import ExitStatus, help_text

EXIT_CALLS = {"Exit", "exit", "_exit", "SystemExit", "exit_code", "ExitStatus"}  # what ends the process with its argument
EXIT_NAMES = re.compile(r"^(EXIT_\w+|\w+_FAILURE|exit_code|exit_status)$")  # names that hold an exit code


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _code_of(node: ast.AST | None) -> int | str | None:
    """The exit code an expression names: an int literal, `ExitStatus.NAME`'s name, or None (computed)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Attribute) and _name(node.value) == "ExitStatus":
        return node.attr
    return None


def _exit_code_returns(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST | None]:
    """What a function returns, when it returns exit codes (it returns an ExitStatus member somewhere)."""
    returned = [n.value for n in ast.walk(func) if isinstance(n, ast.Return)]
    is_status = any(isinstance(v, ast.Attribute) and _name(v.value) == "ExitStatus" for v in returned)
    return returned if is_status else []


def codes_in_source() -> set[tuple[str, int | str]]:
    """(where, code) for every exit code written in the package: arguments of exit calls, values of
    exit-code names, `ExitStatus.NAME` anywhere."""
    found = set()
    for path, tree in parsed_modules():
        for node in ast.walk(tree):
            values: list[ast.AST | None] = []
            if isinstance(node, ast.Call) and _name(node.func) in EXIT_CALLS:
                values = node.args[:1]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(EXIT_NAMES.match(_name(t)) for t in targets):
                    values = [node.value]
            elif isinstance(node, ast.Attribute) and _name(node.value) == "ExitStatus":
                values = [node]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                values = _exit_code_returns(node)
            for value in values:
                code = _code_of(value)
                if code is not None:
                    found.add((f"{path.relative_to(PACKAGE)}:{node.lineno}", code))
    return found


def test_every_exit_code_in_the_source_is_a_member():
    found = codes_in_source()
    assert any(code == "TOOL" for _, code in found), "the scan finds nothing: it is broken"
    members = {s.name for s in ExitStatus} | {s.value for s in ExitStatus}
    strays = [(where, code) for where, code in found if code not in members and code not in ("meaning", "value", "name")]
    assert not strays, f"exit codes with no ExitStatus member (add one, with its meaning): {strays}"


def test_a_signal_that_ends_a_turn_has_its_member():
    for sig in signals.HANDLED:
        assert ExitStatus(128 + sig).meaning


def test_help_lists_every_member_with_its_meaning(invoke):
    shown = " ".join(invoke("--help").out.split())  # undo the help formatter's wrapping
    assert help_text() in shown
    for status in ExitStatus:
        assert f"{status.value} {status.meaning}" in shown, status
    assert "7 tool failed" in shown


def _section(readme: str, title: str) -> str:
    return readme.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_readme_lists_every_member_and_names_no_other_code():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    listed = {int(c) for row in re.findall(r"^\| ([\d, ]+) \|", _section(readme, "Exit codes"), re.M) for c in row.split(",")}
    assert listed == {s.value for s in ExitStatus}
    faults = re.findall(r"^\|.*\| ([\d /]+) \|$", _section(readme, "When things go wrong"), re.M)  # the table's exit column
    assert faults and {int(c) for cell in faults for c in cell.split("/")} <= listed
