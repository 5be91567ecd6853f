"""Option and argument values converted without pydantic, where Typer's own conversion would import it.

Typer (0.2x) converts every parameter through a pydantic TypeAdapter, built on first use, even for a
value left out (`None`): each command's start imported pydantic (~50–130 ms, a third of a one-shot
once no SDK is imported; #34). streamchat's parameters are str, int, float, bool, list[str], Path
and one Enum; the plain ones in their plain forms are converted here, and anything else (a value
that does not parse, a Path, the Enum) goes to Typer's own conversion, so its checks and its error
messages stay the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_NOT_PLAIN = object()


def plain_value(annotation: Any, value: Any) -> Any:
    """`value` as `annotation` when both are plain, else _NOT_PLAIN (Typer decides)."""
    if annotation in (str, int, float) and type(value) is annotation:  # a default
        return value
    if isinstance(value, str):
        if annotation is str:
            return value
        if annotation is int and _INT.fullmatch(value):
            return int(value)
        if annotation is float and _FLOAT.fullmatch(value):
            return float(value)
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            return next((member for member in annotation if member.value == value), _NOT_PLAIN)
    elif annotation == list[str] and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return _NOT_PLAIN


def install(command: Any) -> None:
    """Give every parameter of `command` and its subcommands the plain conversion first."""
    try:
        from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    except ImportError:  # a Typer that converts through click's types: nothing imports pydantic
        return

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            plain = plain_value(self.annotation, value)
            if plain is not _NOT_PLAIN:
                return plain
            typer_own: Any = build_runtime_param(self.descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)

    def plain(param: Any) -> Any:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and getattr(param, "_runtime_param", False) is None:
            param._runtime_param = PlainParam(parameter_info=descriptor.parameter_info,
                                              annotation=descriptor.annotation, descriptor=descriptor)
        return param

    def walk(cmd: Any) -> None:
        for param in getattr(cmd, "params", []):
            plain(param)
        help_option = cmd.get_help_option  # made anew for each context
        cmd.get_help_option = lambda ctx: plain(help_option(ctx))
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(command)
