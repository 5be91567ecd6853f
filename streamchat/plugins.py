"""Plugins: installed distributions that add providers, Python-function tools and `-f` sources.

A plugin declares entry points in the one `streamchat` group, each named `KIND.NAME`:

    [project.entry-points.streamchat]
    "provider.echo" = "streamchat_echo.provider:SPEC"     # a ProviderSpec (or a module holding one)
    "tools.echo" = "streamchat_echo.tools"                # a module, a function, or a list of functions
    "source.echo" = "streamchat_echo.source:read_source"  # -f echo:REST → read_source("REST") → text

The name says what is registered, so listing (`streamchat plugins`, resolving `-m echo:x`,
completing a model name) reads the installed metadata only; a plugin's module is imported when
something it registered is used, never by `--help`, `--version` or Tab. A module that fails to
import is one line naming the distribution, and nothing else is affected.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING, Any

from streamchat.errors import PluginError, UsageError
from streamchat.providers.registry import ProviderSpec, register

if TYPE_CHECKING:
    from streamchat.function_tools import FunctionSource

GROUP = "streamchat"
KINDS = ("provider", "tools", "source")
NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")  # a source prefix must not read as a path: no dots, no slashes


@dataclass(frozen=True)
class Registration:
    """One entry point: what it registers, and the distribution it comes from."""

    kind: str  # provider | tools | source (or a kind this version does not know)
    name: str
    value: str  # "module:attribute", imported only by `load`
    dist: str
    version: str

    @property
    def shown(self) -> str:
        return f"plugin {self.dist} ({self.kind}.{self.name})"

    def load(self) -> Any:
        """Import the plugin's object; any failure is one line naming the plugin and the fix."""
        try:
            return EntryPoint(f"{self.kind}.{self.name}", self.value, GROUP).load()
        except (Exception, SystemExit) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise PluginError(f"{self.shown} failed to import: {type(exc).__name__}" + (f": {text}" if text else ""),
                              hint=f"reinstall it, or pip uninstall {self.dist}") from exc


@functools.lru_cache(maxsize=1)
def registrations() -> tuple[Registration, ...]:
    """Every installed plugin's entry points, read from the installed metadata (no import)."""
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=GROUP):
        kind, _, name = ep.name.partition(".")
        dist = ep.dist
        found.append(Registration(kind, name, ep.value, dist.name if dist else "?", dist.version if dist else "?"))
    return tuple(found)


def find(kind: str, name: str) -> Registration | None:
    """What registered `KIND.NAME` (the first distribution on the path, as Python would import it)."""
    return next((r for r in registrations() if r.kind == kind and r.name == name), None)


def sole(kind: str, name: str) -> Registration | None:
    """`find`, refusing a name two distributions register: which one Python finds first depends on
    the path's order, so either could silently replace the other's tools, source or provider."""
    found = [r for r in registrations() if r.kind == kind and r.name == name]
    dists = sorted({r.dist for r in found}, key=str.lower)
    if len(dists) > 1:
        raise PluginError(f"{kind}.{name} is registered by {len(dists)} plugins ({', '.join(dists)})",
                          hint="pip uninstall one of them")
    return found[0] if found else None


def names(kind: str) -> list[str]:
    return list(dict.fromkeys(r.name for r in registrations() if r.kind == kind))


# -- the three hooks ---------------------------------------------------------------------------
def load_provider(type_: str) -> ProviderSpec | None:
    """The ProviderSpec a plugin registers as `provider.TYPE`, registered, or None when no plugin
    does (`registry.spec_for` asks for a type it does not know). The entry point names the spec
    itself or a module holding one."""
    reg = sole("provider", type_)
    if reg is None:
        return None
    loaded = reg.load()
    candidates = [loaded] if isinstance(loaded, ProviderSpec) else \
        [v for v in vars(loaded).values() if isinstance(v, ProviderSpec)] if isinstance(loaded, types.ModuleType) else []
    spec = next((c for c in candidates if c.type == type_), None)
    if spec is None:
        raise PluginError(f"{reg.shown} names no ProviderSpec of type '{type_}'",
                          hint="its entry point must name a ProviderSpec, or a module holding one")
    try:
        register(spec)
    except ValueError as exc:
        raise PluginError(f"{reg.shown}: {exc}", hint=f"pip uninstall {reg.dist}") from None
    return spec


def tool_source(name: str) -> FunctionSource | None:
    """The tools a plugin registers as `tools.NAME`, as one source; its module is imported when
    they are first listed (the toolbox's first request), not here."""
    reg = find("tools", name)
    if reg is None:
        return None
    from streamchat.function_tools import FunctionSource, check_source_name, functions_of

    check_source_name(name, reg.shown, f"pip uninstall {reg.dist}, or ask its author to rename tools.{name}")

    def load() -> Iterable[Callable[..., Any]]:  # a clash is found when the tools are used, so /tools still lists
        return functions_of(sole("tools", name).load(), reg.shown)  # type: ignore[union-attr]

    return FunctionSource(name, reg.shown, load)


def source_loader(prefix: str) -> Callable[[str], list[tuple[str, str]]] | None:
    """`-f PREFIX:REST`'s reader when a plugin registers `source.PREFIX`: REST → [(name, text)].
    The plugin's function returns the text, or (name, text) pairs for several pieces."""
    if not NAME.match(prefix):
        return None
    reg = find("source", prefix)
    if reg is None:
        return None

    def read(rest: str) -> list[tuple[str, str]]:
        function = sole("source", prefix).load()  # type: ignore[union-attr]
        try:
            got = function(rest)
        except (KeyboardInterrupt, PluginError):
            raise
        except (Exception, SystemExit) as exc:  # the plugin's own refusal (not found, no access, even sys.exit): the source's error
            raise UsageError(f"-f {prefix}:{rest}: {type(exc).__name__}: {exc}",
                             hint=f"check the argument ({reg.shown} read it)") from exc
        if isinstance(got, str):
            return [(f"{prefix}:{rest}", got)]
        pieces = [(str(n), t) for n, t in got]
        if not all(isinstance(t, str) for _n, t in pieces):
            raise PluginError(f"{reg.shown} returned something other than text for -f {prefix}:{rest}",
                              hint="a source function returns a str, or (name, text) pairs")
        return pieces

    return read


# -- `streamchat plugins` ----------------------------------------------------------------------
def installed() -> list[dict[str, Any]]:
    """Each plugin distribution, its version and what it registers, by kind (from metadata only)."""
    out: dict[str, dict[str, Any]] = {}
    for reg in registrations():
        entry = out.setdefault(reg.dist, {"name": reg.dist, "version": reg.version,
                                          **{kind: [] for kind in KINDS}})
        entry.setdefault(reg.kind if reg.kind in KINDS else "unknown", []).append(
            reg.name if reg.kind in KINDS else f"{reg.kind}.{reg.name}")
    return sorted(out.values(), key=lambda e: e["name"].lower())


def describe(plugin: dict[str, Any]) -> list[str]:
    """The lines `streamchat plugins` prints for one distribution."""
    from streamchat.function_tools import RESERVED
    from streamchat.providers.registry import all_specs

    built_in = {s.type for s in all_specs() if s.adapter_module.startswith("streamchat.")}  # spec_for never asks a plugin
    lines = [f"{plugin['name']} {plugin['version']}"]
    shown = {"provider": "provider {}  (-m {}:MODEL)", "tools": "tools {}  (--tools {})", "source": "source {}:  (-f {}:…)"}
    for kind in KINDS:
        lines += ["  " + (f"provider {name}: the built-in provider type of that name is used; ignored"
                          if kind == "provider" and name in built_in else
                          f"tools {name}: --approve reads '{name}' as every tool; ignored"
                          if kind == "tools" and name in RESERVED else shown[kind].format(name, name))
                  for name in plugin[kind]]
    lines += [f"  {name}: not a kind this version knows (provider, tools, source); ignored"
              for name in plugin.get("unknown", [])]
    return lines
