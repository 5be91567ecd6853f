"""Python functions as tools: `--functions FILE.py` and plugins' `tools.NAME` entry points.

A function's signature becomes the JSON Schema of its arguments (through a pydantic model, so
int, float, str, bool, lists, dicts, Optional, Literal and defaults all read as the model APIs
expect) and its docstring the description. A call's arguments are validated by the same model
before the function runs; whatever it returns goes back as text. The `Toolbox` treats a
`FunctionSource` as it treats an MCP server (same approval, same `→`/`←` lines): a file `fns.py`
is the source `fns`, its function `add` the tool `fns:add`.

A call runs on a worker thread of its own and is waited for at most `function_timeout` seconds
(config; `--function-timeout`). A function that has not returned by then is abandoned: the model
is told the call timed out (a tool error), the user sees one line, and the turn goes on. Python
cannot kill a thread, so the worker is asked to stop (an exception raised in it at its next Python
instruction: a runaway loop ends there) and is otherwise left to finish in the background; one
blocked in C (a `time.sleep`, a socket read without a timeout) runs on until that returns or the
process exits (the thread is a daemon: it never holds up the exit). Why not a subprocess, which
could be killed: a function would then run in another interpreter, its file imported a second
time (its side effects twice), a plugin's functions (closures, objects) would have to be
importable from there, and every argument and result pickled; a function here is the user's own
code, run as theirs, in this process, as before.
"""

from __future__ import annotations

import contextlib
import ctypes
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

from streamchat.errors import PluginError, ToolError
from streamchat.events import ToolSpec
from streamchat.paths import user_path

Loader = Callable[[], Iterable[Callable[..., Any]]]
RESERVED = frozenset({"all", "*"})  # what --approve and the approve list read as every tool: never a source's name
DEFAULT_TIMEOUT = 60.0  # seconds a call may take (function_timeout, --function-timeout)


class Abandoned(BaseException):
    """Raised inside a call that outlived its timeout, to stop it (a BaseException, so the
    function's own `except Exception` does not swallow it)."""


def check_source_name(name: str, where: str, hint: str) -> None:
    """A tool source's name is the NAME of `--approve NAME:TOOL`: one holding ':' or a word
    --approve reads as every tool (`all`, `*`) would make an approval mean something else."""
    if ":" in name:
        raise PluginError(f"{where}: a tool source's name cannot hold ':'", hint=hint)
    if name in RESERVED:
        raise PluginError(f"{where}: a tool source cannot be named '{name}' (--approve {name} means every tool)",
                          hint=hint)


class FunctionTool:
    """One function: what the model sees, and how a call's arguments reach it."""

    def __init__(self, function: Callable[..., Any], where: str) -> None:
        name = getattr(function, "__name__", "")
        self.function = function
        self.name = name
        self.model = _arguments_model(function, where)
        self.spec = ToolSpec(name, inspect.getdoc(function) or "", _schema(self.model))

    def call(self, arguments: dict[str, Any], timeout: float | None = None) -> tuple[str, bool]:
        """(result text, is_error): bad arguments and the function's own exceptions are told to
        the model as errors, as an MCP server reports a failing tool. With `timeout`, the function
        runs on a worker thread, abandoned after that many seconds (ToolError; see the module's docstring)."""
        from pydantic import ValidationError

        try:
            values = self.model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            return f"invalid arguments: {problems}", True
        kwargs = {field: getattr(values, field) for field in type(values).model_fields}
        if timeout is None:
            return self._run(kwargs)
        done: list[tuple[str, bool]] = []
        settled = threading.Lock()  # a call that returns as it is abandoned is either answered or stopped

        def work() -> None:
            with contextlib.suppress(Abandoned):  # Abandoned fires inside this block, never after it
                result = self._run(kwargs)
                with settled:
                    done.append(result)

        worker = threading.Thread(target=work, name=f"function {self.name}", daemon=True)
        worker.start()
        try:
            worker.join(timeout)
        finally:  # a timeout, or Ctrl-C while it ran: the call is abandoned
            with settled:
                if not done:
                    _stop(worker)
        if not done:
            raise ToolError(f"{self.name}() did not return within {timeout:g} s; it was abandoned",
                            hint="raise function_timeout in the config, or pass --function-timeout SECONDS")
        return done[0]

    def _run(self, kwargs: dict[str, Any]) -> tuple[str, bool]:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout is the answer's: a print() must not land in it
                result = self.function(**kwargs)
        except Abandoned:
            raise
        except KeyboardInterrupt as exc:
            if threading.current_thread() is threading.main_thread():
                raise  # Ctrl-C (a call without a timeout runs here): the user's, not the function's
            return _failure(exc), True  # on a worker no signal arrives: the function raised it
        except BaseException as exc:  # the function's failure (sys.exit, its own BaseException) is the model's to hear
            return _failure(exc), True  # about: a BaseException killed the worker with a traceback, "did not return"
        return _as_text(result), False


def _failure(exc: BaseException) -> str:
    """A function's exception as the model is told it: `Stop: nope`, a bare `KeyboardInterrupt`."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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

    def call(self, tool: str, arguments: dict[str, Any], timeout: float | None = None) -> tuple[str, bool]:
        """A call of `tool`; one that takes more than `timeout` seconds is abandoned (ToolError)."""
        from streamchat.mcp_client import capped

        found = self._loaded().get(tool)
        if found is None:
            return f"there is no tool named {tool}", True
        try:
            text, is_error = found.call(arguments, timeout)
        except ToolError as err:
            raise ToolError(f"{self.name}:{err.message}", hint=err.hint) from None
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
    file = user_path(str(path))
    check_source_name(file.stem, f"--functions {path}", "rename the file: its name is the tools' source name")
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


def _stop(worker: threading.Thread) -> None:
    """Ask an abandoned call's thread to stop: `Abandoned` is raised in it at its next Python
    instruction (a loop stops there; a call blocked in C only once that returns)."""
    if worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(Abandoned))


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
