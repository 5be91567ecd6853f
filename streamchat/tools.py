"""The tools of a session: which are enabled, asking before each call, running it, the lines shown.

`Toolbox` is the `ToolRunner` the turn loop calls. Tools come from MCP servers (`McpHub`) and
from Python functions (`FunctionSource`: a `--functions` file, a plugin's `tools.NAME`), each
source under a name; `--tools NAME` enables a source's tools, `NAME:TOOL` one tool. Nothing runs
without the user's yes at a terminal, or without `--approve` / the config's `approve` list naming
it, whatever the source; a refused call is reported to the model as refused, so it can answer without it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

from streamchat.config import Settings
from streamchat.conversation import call_line, shown_json, shown_key
from streamchat.errors import ConfigError, PluginError, StreamchatError, ToolError, UsageError
from streamchat.events import TOOL_NAME_CHARS, ToolCall, ToolResult, ToolSpec
from streamchat.function_tools import RESERVED, FunctionSource, file_source
from streamchat.mcp_client import McpHub
from streamchat.render.sanitize import sanitize, sanitize_command
from streamchat.ui import UI, byte_size, exact_choice

MENU = "run it? [y]es / [n]o / [a]lways for this tool / [e]dit arguments{} (default n): "
CHOICES = {"y": "yes", "n": "no", "a": "always", "e": "edit", "v": "view"}
PREVIEW = 12  # argument lines shown at the prompt before "N more lines — [v]iew"
REFUSED = "The user did not allow this call. Answer without it, or ask the user."


@dataclass(frozen=True)
class Tool:
    server: str
    remote: str  # its name on the server
    spec: ToolSpec  # what the model sees (the name may carry the server to stay unique)

    @property
    def qualified(self) -> str:
        return f"{self.server}:{self.remote}"


def matches(pattern: str, tool: Tool) -> bool:
    """`all`, `server`, `server:*` or `server:tool`, always against the server the tool came from:
    a tool named `files:read_file` (or `read_file`, or `files`) on server `evil` is `evil:…`, so it
    cannot ride the approval given to server `files`."""
    if pattern in RESERVED:
        return True
    server, sep, name = pattern.partition(":")
    return server == tool.server and (not sep or name in ("*", tool.remote))


def check_patterns(patterns: tuple[str, ...], servers: Collection[str], where: str,
                   error: type[StreamchatError] = UsageError, *, plugin: Callable[[str], object] = lambda _n: None) -> None:
    """Refuse an approve pattern that names no configured server nor tool source (a bare tool
    name once matched that tool on every server); `plugin` finds a plugin's tools by name."""
    for pattern in patterns:
        name = pattern.partition(":")[0]
        if pattern not in RESERVED and name not in servers and plugin(name) is None:
            known = ", ".join(sorted(servers)) or "none configured"
            raise error(f"{where} '{pattern}' names no MCP server or tool source (configured: {known})",
                        hint="approve takes SERVER, SERVER:TOOL or all")


def shown(tool: Tool, call: ToolCall, limit: int | None = 120) -> str:
    """The `→` line of a call: the tool's own server and name, not the name the model saw."""
    return "→ " + sanitize_command(call_line(replace(call, name=tool.qualified), limit))


def argument_lines(call: ToolCall, width: int) -> list[str]:
    """Every argument of a call in full, `key = value` (JSON, control characters escaped), wrapped
    at `width`: continuation lines are indented deeper, so no argument can pass for a line of ours."""
    step = max(width - 4, 20)
    lines = []
    for key, value in call.parsed().items():
        text = sanitize_command(f"{shown_key(key)} = {shown_json(value)}")
        lines.append("  " + text[:step])
        lines += ["    " + text[i:i + step] for i in range(step, len(text), step)]
    return lines


def say(ui: UI, line: str) -> None:
    """Print one of the toolbox's lines. Nearly all carry a server's or the model's text (a tool's
    name, its arguments), so every one goes through the sanitizer: none can forget it."""
    ui.notice(sanitize(line))


class Approval:
    """Whether a call may run: the allow-list (config `approve`, `--approve`), then the user.

    `ask` reads one answer from the terminal; None means no terminal, so only the allow-list counts.
    `[a]lways` lasts for this process only.
    """

    def __init__(self, allowed: tuple[str, ...], ask: Callable[[str], str] | None, ui: UI,
                 edit: Callable[[str], str] | None = None) -> None:
        self.allowed = list(allowed)
        self.ask = ask
        self.ui = ui
        self.edit = edit

    def allows(self, tool: Tool) -> bool:
        return any(matches(p, tool) for p in self.allowed)

    def decide(self, tool: Tool, call: ToolCall) -> ToolCall | None:
        """The call to run (its arguments possibly edited), or None when refused."""
        if self.allows(tool):
            return call
        if self.ask is None:
            return None
        more = self._arguments(tool, call)
        while True:
            try:
                answer = exact_choice(self.ask(MENU.format(" / [v]iew all" if more else "")), CHOICES, "no")
            except EOFError:
                answer = "no"
            if answer is None or answer == "view" and not more:  # "yes, but…", "explain": only the exact choice acts
                say(self.ui, "  answer y, n, a, e" + (" or v" if more else "") + " (or the word)")
                continue
            if answer == "view":
                for line in more:
                    say(self.ui, line)
                more = []
                continue
            if answer == "yes":
                return call
            if answer == "always":
                self.allowed.append(tool.qualified)
                return call
            if answer == "edit":
                call = self._edited(call)
                say(self.ui, shown(tool, call))
                more = self._arguments(tool, call)
                continue
            return None

    def _arguments(self, tool: Tool, call: ToolCall) -> list[str]:
        """When the `→` line had to be shortened, the arguments in full before the question: the
        first lines, and the rest (returned) on [v]iew."""
        if shown(tool, call, None) == shown(tool, call):
            return []
        lines = argument_lines(call, _width(self.ui))
        now = lines if len(lines) <= PREVIEW + 1 else lines[:PREVIEW]  # never "1 more line"
        for line in now:
            say(self.ui, line)
        rest = lines[len(now):]
        if rest:
            say(self.ui, f"  … {len(rest)} more lines — [v]iew")
        return rest

    def _edited(self, call: ToolCall) -> ToolCall:
        from streamchat.editor import edit_text

        try:
            current = json.dumps(call.parsed(), indent=2, ensure_ascii=False)
        except ValueError:
            current = call.arguments
        text = (self.edit or edit_text)(current + "\n")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            say(self.ui, f"  not JSON ({exc.msg}); the arguments are unchanged")
            return call
        if not isinstance(value, dict):
            say(self.ui, "  the arguments must be a JSON object; unchanged")
            return call
        return replace(call, arguments=json.dumps(value, ensure_ascii=False))


def _model_name(name: str) -> str:
    """Names the APIs accept: letters, digits, _ and -, at most 64."""
    return re.sub(rf"[^{TOOL_NAME_CHARS}]", "_", name)[:64] or "tool"


def model_names(found: list[Tool]) -> tuple[dict[str, Tool], list[str]]:
    """The enabled tools by a name the model sees, each name unique, and a notice per renamed tool.

    A name is the tool's own when no other enabled tool has it, else `server_tool`; one that is still
    taken (a server may name a tool `files_read_file`, or `files:read_file`, which reads the same)
    gets a number. Earlier servers (in `--tools` order) keep their names.
    """
    remotes = [t.remote for t in found]
    named: dict[str, Tool] = {}
    notices = []
    for t in found:
        wanted = _model_name(t.remote if remotes.count(t.remote) == 1 else f"{t.server}_{t.remote}")
        name, n = wanted, 1
        while name in named:
            n += 1
            name = f"{wanted[:60]}_{n}"
        if name != wanted:
            notices.append(f"tool {t.qualified} is called {name} for the model: {wanted} is {named[wanted].qualified}")
        named[name] = Tool(t.server, t.remote, replace(t.spec, name=name))
    return named, notices


class Toolbox:
    """The enabled tools of a session and the `ToolRunner` of its turns."""

    def __init__(self, settings: Settings, hub: McpHub, selection: list[str], approval: Approval, ui: UI,
                 local: Collection[FunctionSource] = (), implicit: Collection[str] = ()) -> None:
        self.settings = settings
        self.hub = hub
        self.local = {source.name: source for source in local}  # Python tool sources, plugins' added when named
        self.implicit = set(implicit)  # sources on because the config's `functions` lists them, not asked for
        self.approval = approval
        self.ui = ui
        self.max_steps = settings.tool_steps
        self.selection: list[str] = []  # NAME (a server, all its tools) or NAME:TOOL, in --tools order
        self.excluded: set[str] = set()  # NAME:TOOL turned off while server NAME is on
        self._tools: dict[str, Tool] | None = None
        self._renamed: list[str] = []  # notices about renamed tools not yet shown
        self._said: set[str] = set()
        self._lock = threading.Lock()
        for item in selection:
            self.enable(item)

    def start(self) -> None:
        """Start the enabled servers in the background (while the SDK loads and the user types);
        the turn waits for that same attempt, and a failure is reported then."""
        for server in self._servers():
            if server not in self.local:
                self.hub.start(server)

    def _servers(self) -> list[str]:
        return list(dict.fromkeys(s.partition(":")[0] for s in self.selection))

    # -- which tools ---------------------------------------------------------------------
    def enable(self, item: str) -> None:
        """Turn on server `NAME` (all its tools) or one `NAME:TOOL`."""
        server, _, tool = item.partition(":")
        if server not in self.settings.mcp and self.source(server) is None:
            known = ", ".join(sorted(self.settings.mcp)) or "none configured"
            raise UsageError(f"no MCP server named '{server}' (configured: {known})",
                             hint=f'add [mcp.{server}] with command = "…" or url = "…" to the config, '
                                  "or pass --functions FILE.py")
        if not tool:  # the whole server: its single tools and exceptions are subsumed
            self.selection = [s for s in self.selection if s.partition(":")[0] != server]
            self.excluded = {e for e in self.excluded if e.partition(":")[0] != server}
            self.selection.append(server)
        elif item in self.excluded:
            self.excluded.discard(item)
        elif item not in self.selection and server not in self.selection:
            self.selection.append(item)
        self._tools = None

    def disable(self, item: str) -> bool:
        """Turn off a server or one tool (also one tool of a server that is on); False if it was not on."""
        server, _, tool = item.partition(":")
        before = (list(self.selection), set(self.excluded))
        if not tool:
            self.selection = [s for s in self.selection if s.partition(":")[0] != server]
            self.excluded = {e for e in self.excluded if e.partition(":")[0] != server}
        elif item in self.selection:
            self.selection.remove(item)
        elif server in self.selection and self._offers(server, tool):
            self.excluded.add(item)
        self._tools = None
        return before != (self.selection, self.excluded)

    def source(self, name: str) -> FunctionSource | None:
        """The Python tool source `name`: a --functions file, or a plugin's tools (the plugin's
        module is not imported until its tools are listed)."""
        if name not in self.local:
            from streamchat import plugins

            found = plugins.tool_source(name)
            if found is None:
                return None
            if name in self.settings.mcp:
                raise PluginError(f"'{name}' is both an MCP server and {found.label}'s tools",
                                  hint=f"rename [mcp.{name}] in the config")
            self.local[name] = found
        return self.local[name]

    def _offers(self, server: str, tool: str) -> bool:
        """Whether `server` has `tool`, as far as is known without starting it."""
        known = [t.remote for t in (self._tools or {}).values() if t.server == server]
        return not known or tool in known

    def label(self) -> str:
        """What is on, for the REPL: `files (not slow), web:search`."""
        def one(item: str) -> str:
            off = sorted(e.partition(":")[2] for e in self.excluded if e.partition(":")[0] == item)
            return f"{item} (not {', '.join(off)})" if off else item

        return sanitize(", ".join(one(s) for s in self.selection))

    @property
    def active(self) -> bool:
        return bool(self.selection)

    @property
    def asked(self) -> bool:
        """Tools were asked for (--tools, --functions, /tools on), not only on through the config."""
        return any(s.partition(":")[0] not in self.implicit for s in self.selection)

    def tools(self) -> dict[str, Tool]:
        """Enabled tools by the name the model sees; starts their servers (ToolError if one cannot start)."""
        with self._lock:
            tools = self._resolve()
            for notice in self._renamed:
                if notice not in self._said:
                    self._said.add(notice)
                    say(self.ui, notice)
            return tools

    def _resolve(self) -> dict[str, Tool]:
        if self._tools is None:
            found: list[Tool] = []
            for server in self._servers():
                wanted = {s.partition(":")[2] for s in self.selection if s.partition(":")[0] == server}
                everything = "" in wanted
                offered = self._offered(server)
                for spec in offered:
                    if (everything or spec.name in wanted) and f"{server}:{spec.name}" not in self.excluded:
                        found.append(Tool(server, spec.name, spec))
                missing = wanted - {"", *(t.name for t in offered)}
                if missing:
                    raise ToolError(f"MCP server '{server}' has no tool '{sorted(missing)[0]}'",
                                    hint=f"it offers: {', '.join(t.name for t in offered) or 'nothing'}")
            _no_clash([t for t in found if t.server in self.local])
            self._tools, self._renamed = model_names(found)
        return self._tools

    def _offered(self, server: str) -> list[ToolSpec]:
        if server in self.local:
            return self.local[server].tools
        with self.ui.spinner(f"starting MCP server {server}"):
            return self.hub.server(server).tools

    def _call(self, tool: Tool, arguments: dict[str, object]) -> tuple[str, bool]:
        if tool.server in self.local:
            return self.local[tool.server].call(tool.remote, arguments, self.settings.function_timeout)
        return self.hub.call(tool.server, tool.remote, arguments)

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self.tools().values()) if self.active else ()

    # -- running -------------------------------------------------------------------------
    def run(self, call: ToolCall) -> ToolResult:
        tool = self.tools().get(call.name)
        if tool is None:
            say(self.ui, f"→ {sanitize_command(call_line(call))}")
            say(self.ui, f"  no tool named {call.name}; the model was told")
            return ToolResult(call, f"error: there is no tool named {call.name}", "error")
        say(self.ui, shown(tool, call))
        try:
            arguments = call.parsed()
        except ValueError as exc:
            say(self.ui, "  the model sent arguments that are not a JSON object; it was told")
            return ToolResult(call, f"error: the arguments are not a JSON object ({exc})", "error")
        approved = self.approval.decide(tool, call)
        if approved is None:
            if self.approval.ask is None:
                say(self.ui, f"  not run: {tool.qualified} needs approval without a terminal — pass --approve "
                               f"{tool.qualified} (or --approve all), or list it in approve in the config")
            else:
                say(self.ui, "  refused; the model was told")
            return ToolResult(call, REFUSED, "refused")
        if approved is not call:
            arguments = approved.parsed()
        started = time.perf_counter()
        try:
            text, is_error = self._call(tool, arguments)
        except ToolError as err:
            self.ui.error(str(err))
            ms = (time.perf_counter() - started) * 1000
            return ToolResult(approved, f"error: {err.message}", "error", ms)
        ms = (time.perf_counter() - started) * 1000
        say(self.ui, f"← {tool.qualified}: {byte_size(len(text.encode()))} in {_duration(ms)}"
                       + (" (the tool reported an error)" if is_error else ""))
        return ToolResult(approved, text, "error" if is_error else "ok", ms)

    def describe(self) -> list[str]:
        """`/tools`: each configured server and Python tool source, and under it its tools that are on."""
        from streamchat.plugins import names

        tools = self.tools() if self.active else {}
        lines = []
        for name in names("tools"):  # every plugin's, off or on (listing them imports none)
            if name not in self.settings.mcp and name not in RESERVED:  # `streamchat plugins` says it is ignored
                self.source(name)
        sources = {name: config.url or config.command for name, config in self.settings.mcp.items()}
        sources.update({name: source.label for name, source in self.local.items()})
        for name, where in sorted(sources.items()):
            on = [s for s in self.selection if s.partition(":")[0] == name]
            off = sorted(e.partition(":")[2] for e in self.excluded if e.partition(":")[0] == name)
            state = ("on" + (f" except {', '.join(off)}" if off else "") if name in on
                     else (", ".join(on) + " on") if on else "off")
            lines.append(sanitize(f"{name} ({where}): {state}"))
            for model_name, tool in tools.items():
                if tool.server == name:
                    always = " · runs without asking" if self.approval.allows(tool) else ""
                    summary = tool.spec.description.splitlines()[0] if tool.spec.description else ""
                    lines.append(sanitize(f"  {model_name} — {summary}{always}"))  # a server's text, like a model's
        return lines

    def close(self) -> None:
        self.hub.close()


def _width(ui: UI) -> int:
    """The terminal's width, for wrapping arguments (100 when stderr is not a terminal)."""
    try:
        return os.get_terminal_size(ui.env.stderr.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 100


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def terminal_ask(ui: UI) -> Callable[[str], str]:
    """Ask on stderr, read the answer from stdin (a terminal; stdout may be a file)."""
    return ui.ask


def build_toolbox(settings: Settings, selection: list[str], approve: list[str], ui: UI, *,
                  interactive: bool, functions: Collection[str] = ()) -> Toolbox:
    """The session's toolbox: `--tools` enabled, the config's and `--functions`' files loaded and
    on, `--approve` added to the config's list."""
    local = function_files([*settings.functions, *functions], settings.mcp)
    implicit = {Path(p).stem for p in settings.functions} - {Path(p).stem for p in functions} - set(selection)
    from streamchat.plugins import tool_source

    names = {*settings.mcp, *(source.name for source in local)}
    check_patterns(settings.approve, names, "the config's approve entry", ConfigError, plugin=tool_source)
    check_patterns(tuple(approve), names, "--approve", plugin=tool_source)
    approval = Approval(settings.approve + tuple(approve), terminal_ask(ui) if interactive else None, ui)
    on = [source.name for source in local if source.name not in selection]
    return Toolbox(settings, McpHub(settings.mcp, lambda line: say(ui, line)), [*on, *selection], approval, ui, local,
                   implicit)


def function_files(paths: Collection[str], servers: Collection[str]) -> list[FunctionSource]:
    """Each `--functions` file (the config's first) loaded, under its stem; a stem that is already
    a source's name (an MCP server's, another file's, a plugin's tools) is a clash, refused."""
    from streamchat.plugins import tool_source

    sources: dict[str, FunctionSource] = {}
    for path in dict.fromkeys(paths):
        source = file_source(path)
        if source.name in servers:
            other: str | None = f"MCP server '{source.name}'"
        elif source.name in sources:
            other = sources[source.name].label
        else:
            plugin = tool_source(source.name)
            other = plugin.label if plugin is not None else None
        if other is not None:
            raise PluginError(f"--functions {path}: its name '{source.name}' is taken by {other}",
                              hint="rename the file: its name is the tools' source name (NAME:TOOL in --approve)")
        sources[source.name] = source
    return list(sources.values())


def _no_clash(tools: list[Tool]) -> None:
    """Two Python tool sources offering a function of the same name: refused rather than renamed
    (the user wrote both and can rename one; the model would otherwise see `fns_add` and `more_add`)."""
    seen: dict[str, Tool] = {}
    for tool in tools:
        if tool.remote in seen:
            raise PluginError(f"two tools are named {tool.remote}: {seen[tool.remote].qualified} and {tool.qualified}",
                              hint="rename one of the functions, or turn one source off (/tools off NAME)")
        seen[tool.remote] = tool
