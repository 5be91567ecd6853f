"""Python functions as tools: `--functions FILE.py` and plugins' `tools.NAME` entry points.

A function's signature becomes the JSON Schema of its arguments (through a pydantic model, so
int, float, str, bool, lists, dicts, Optional, Literal and defaults all read as the model APIs
expect) and its docstring the description. A call's arguments are validated by the same model
before the function runs; whatever it returns goes back as text. The `Toolbox` treats a
`FunctionSource` as it treats an MCP server (same approval, same `→`/`←` lines): a file `fns.py`
is the source `fns`, its function `add` the tool `fns:add`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from streamchat.errors import PluginError
from streamchat.events import ToolSpec

Loader = Callable[[], Iterable[Callable[..., Any]]]


class FunctionTool:
    """One function: what the model sees, and how a call's arguments reach it."""

    def __init__(self, function: Callable[..., Any], where: str) -> None:
        name = getattr(function, "__name__", "")
        self.function = function
        self.name = name
        self.model = _arguments_model(function, where)
        self.spec = ToolSpec(name, inspect.getdoc(function) or "", _schema(self.model))

    def call(self, arguments: dict[str, Any]) -> tuple[str, bool]:
        """(result text, is_error): bad arguments and the function's own exceptions are told to
        the model as errors, as an MCP server reports a failing tool."""
        from pydantic import ValidationError

        try:
            values = self.model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            return f"invalid arguments: {problems}", True
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout is the answer's: a print() must not land in it
                result = self.function(**{field: getattr(values, field) for field in type(values).model_fields})
        except (Exception, SystemExit) as exc:  # the function's failure (even sys.exit) is the model's to hear about
            return f"{type(exc).__name__}: {exc}", True
        return _as_text(result), False


class FunctionSource:
    """Functions under one name (a file's stem, a plugin's `tools.NAME`), loaded on first use:
    a file is loaded when the toolbox is built (its errors come before anything is sent), a
    plugin's module only when its tools are turned on."""

    def __init__(self, name: str, label: str, load: Loader) -> None:
        self.name = name
        self.label = label  # where it comes from, for /tools: the file, or the plugin's distribution
        self._load = load
        self._tools: dict[str, FunctionTool] | None = None
        self._lock = threading.Lock()

    @property
    def tools(self) -> list[ToolSpec]:
        return [t.spec for t in self._loaded().values()]

    def call(self, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        from streamchat.mcp_client import capped

        found = self._loaded().get(tool)
        if found is None:
            return f"there is no tool named {tool}", True
        text, is_error = found.call(arguments)
        return capped(text), is_error

    def _loaded(self) -> dict[str, FunctionTool]:
        with self._lock:
            if self._tools is None:
                tools: dict[str, FunctionTool] = {}
                for function in self._load():
                    tool = FunctionTool(function, self.label)
                    if tool.name in tools:
                        raise PluginError(f"{self.label}: two tools are named {tool.name}", hint="rename one")
                    tools[tool.name] = tool
                if not tools:
                    raise PluginError(f"{self.label} defines no functions", hint="define top-level functions with type hints")
                self._tools = tools
            return self._tools


def file_source(path: str | Path) -> FunctionSource:
    """The public top-level functions of a Python file, loaded now."""
    file = Path(path).expanduser()
    if ":" in file.stem:  # tools are named SOURCE:TOOL (--approve, the approve list)
        raise PluginError(f"--functions {path}: a tool source's name cannot hold ':'", hint="rename the file")
    source = FunctionSource(file.stem, str(path), lambda: module_functions(_import_file(file, str(path))))
    source.tools  # noqa: B018 (a file's errors are reported before anything is sent)
    return source


def module_functions(module: types.ModuleType) -> list[Callable[..., Any]]:
    """A module's public functions defined in it (not those it imported), in the order written."""
    return [value for key, value in vars(module).items()
            if inspect.isfunction(value) and not key.startswith("_") and value.__module__ == module.__name__]


def functions_of(value: Any, where: str) -> list[Callable[..., Any]]:
    """A plugin's `tools.NAME` object as functions: a module, a list or tuple of functions, or one."""
    if isinstance(value, types.ModuleType):
        return module_functions(value)
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not callable(item) or not getattr(item, "__name__", "").isidentifier():
            raise PluginError(f"{where}: {item!r} is not a function",
                              hint="a tools entry point names a module, a function or a list of functions")
    return items


def _import_file(file: Path, shown: str) -> types.ModuleType:
    if file.suffix != ".py" or not file.is_file():
        raise PluginError(f"--functions {shown}: no such Python file", hint="pass a .py file that defines functions")
    name = f"streamchat_functions_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise PluginError(f"--functions {shown}: cannot be imported", hint="pass a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up by name
    try:
        with contextlib.redirect_stdout(sys.stderr):
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise PluginError(f"--functions {shown} failed to import: {_why(exc, file)}", hint="fix the file, or run it with python") from exc
    return module


def _why(exc: BaseException, file: Path) -> str:
    """`SyntaxError: invalid syntax (line 3)`, `NameError: name 'x' is not defined (line 5)`: the
    line is the file's own, the last of its lines the failure passed through."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if frame.filename == str(file)]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    where = f" (line {lines[-1]})" if lines else ""
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def _arguments_model(function: Callable[..., Any], where: str) -> Any:
    """A pydantic model of the function's parameters; every one must have a type hint."""
    import typing

    from pydantic import ConfigDict, create_model

    name = getattr(function, "__name__", "?")
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise PluginError(f"{where}: the hints of {name}() cannot be read ({exc})", hint="fix its annotations") from None
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise PluginError(f"{where}: {name}() takes {param}, which a tool call cannot pass",
                              hint="give it plain named parameters")
        if param.name not in hints:
            raise PluginError(f"{where}: {name}() has no type hint for '{param.name}'",
                              hint=f"annotate every parameter, e.g. def {name}({param.name}: str), or name it _{name} to keep it out")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    try:
        return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    except Exception as exc:  # a hint pydantic cannot turn into a schema (a bare class of the user's, …)
        raise PluginError(f"{where}: {name}()'s hints cannot become a JSON Schema ({type(exc).__name__})",
                          hint="use int, float, str, bool, list, dict, Optional, Literal or a pydantic model") from None


def _schema(model: Any) -> dict[str, Any]:
    """The JSON Schema of the arguments, without pydantic's generated titles (tokens the model
    reads every turn for nothing)."""
    schema: dict[str, Any] = _untitled(model.model_json_schema())
    schema.setdefault("properties", {})
    return schema


def _untitled(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: ({k: _untitled(v) for k, v in value.items()} if key in ("properties", "$defs") and isinstance(value, dict)
                       else _untitled(value))
                for key, value in node.items() if key != "title"}
    if isinstance(node, list):
        return [_untitled(item) for item in node]
    return node


def _as_text(result: Any) -> str:
    """What a function returned, as the model reads it: text as it is, anything else as JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, bytes):
        return result.decode("utf-8", "replace")
    if result is None:
        return "null"
    try:
        return json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(result)
