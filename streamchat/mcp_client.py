"""MCP servers as tool sources, through the official `mcp` SDK.

The SDK is async and streamchat is not: one background event loop (a daemon thread)
holds every server's session. A server starts on first use, once per process, and is
stopped by `close()`. Every wait on it is bounded by its `timeout`, so a server that
fails to start, hangs or dies mid-call costs one clear error, never a hang. A stdio
server's stderr goes to a log file, not over the user's terminal.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from streamchat.capped_log import CappedLog
from streamchat.errors import ToolError
from streamchat.events import ToolSpec

if TYPE_CHECKING:  # types only: config reaches this module through plugins and function tools
    from streamchat.config import McpServerConfig

T = TypeVar("T")
RESULT_LIMIT = 100_000  # characters of one result sent back to the model


def log_path(name: str) -> Path:
    from streamchat.paths import data_dir

    return data_dir() / "mcp" / f"{name}.log"


class _Server:
    """One server: its client session lives in a task on the hub's loop.

    `started` is the one start attempt, shared by whoever needs the server first (the background
    start while the user types, then the turn): it ends at `start_timeout` at the latest.
    """

    def __init__(self, config: McpServerConfig, stray: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.stray = stray  # called for each stdout line that is not MCP
        self.tools: list[ToolSpec] = []
        self.client: Any = None
        self.stop: asyncio.Event | None = None
        self.scope: Any = None  # the anyio CancelScope around the session, to end it from outside
        self.task: asyncio.Task[None] | None = None
        self.started: concurrent.futures.Future[None] | None = None
        self.failure: BaseException | None = None  # why it ended, once it has

    def _transport(self, errlog: CappedLog) -> Any:
        if self.config.url:
            return self.config.url  # the SDK's streamable HTTP client
        from streamchat.mcp_stdio import stdio_transport

        return stdio_transport(self.config, errlog, self.stray)

    async def start(self) -> None:
        """Start the session task and wait until its tools are listed, at most `start_timeout`;
        past it (or cancelled), the server is stopped — its process group killed — and the
        waiters get the error at once, while the stopping goes on in the background."""
        name, limit = self.config.name, self.config.start_timeout
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ready.add_done_callback(_retrieved)  # its failure may come after every waiter has gone
        self.task = asyncio.ensure_future(self.run(ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), limit)
        except asyncio.TimeoutError:
            self.halt()
            raise ToolError(f"starting MCP server '{name}' timed out after {limit:g} s",
                            hint=f"raise start_timeout in its [mcp] table; its output is in {log_path(name)}") from None
        except BaseException:
            self.halt()
            raise

    async def run(self, ready: asyncio.Future[None]) -> None:
        import anyio
        from mcp import Client

        self.stop = asyncio.Event()
        path = log_path(self.config.name)
        try:
            # An anyio scope, not Task.cancel(): the transport's end (close stdin, SIGTERM the process
            # group, then SIGKILL) is shielded from anyio cancellation only, so it runs to the end.
            with anyio.CancelScope() as self.scope, CappedLog(path) as errlog:
                _server_log.set(errlog)  # the SDK's own log records, from this task and its children
                # the SDK's own read timeout is a backstop: ours (McpHub._run) fires first, with a clearer message
                async with Client(self._transport(errlog), read_timeout_seconds=self.config.timeout + 10) as client:
                    self.tools = await _list_tools(client)
                    self.client = client
                    ready.set_result(None)
                    await self.stop.wait()
        except BaseException as exc:  # handed to whoever waits; the loop thread must not die
            self.failure = exc
            if not ready.done():
                ready.set_exception(exc)
        finally:
            self.client = None
            if not ready.done():
                ready.set_exception(ToolError(f"MCP server '{self.config.name}' was stopped while starting"))

    def halt(self) -> None:
        """End the session (on the loop's thread): a running one as it would end at exit, one still
        starting by cancelling its scope."""
        if self.stop is not None:
            self.stop.set()
        if self.client is None and self.scope is not None:
            self.scope.cancel()


_server_log: contextvars.ContextVar[CappedLog | None] = contextvars.ContextVar("mcp_server_log", default=None)


class _ToServerLog(logging.Handler):
    """The SDK's log records (a protocol error, with its traceback) go to the log of the server
    they are about, never to the terminal: Python prints unhandled warnings to stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        log = _server_log.get()
        if log is not None:
            with contextlib.suppress(Exception):
                log.write(self.format(record) + "\n")


def _route_sdk_logs() -> None:
    sdk = logging.getLogger("mcp")
    if not any(isinstance(h, _ToServerLog) for h in sdk.handlers):
        sdk.addHandler(_ToServerLog())
        sdk.propagate = False


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark a future's exception as seen, so asyncio never logs it as "never retrieved"."""
    if not future.cancelled():
        future.exception()


async def _list_tools(client: Any) -> list[ToolSpec]:
    tools: list[ToolSpec] = []
    cursor = None
    for _page in range(100):
        listed = await client.list_tools(cursor=cursor)
        tools += [ToolSpec(t.name, t.description or "", dict(t.input_schema or {"type": "object", "properties": {}}))
                  for t in listed.tools]
        cursor = getattr(listed, "next_cursor", None)
        if not cursor:
            break
    return tools


def _result_text(result: Any) -> str:
    """A call result as text for the model: text blocks as they are, anything else described."""
    parts = []
    for block in result.content or ():
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(block, 'mime_type', '?')}]")
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {getattr(resource, 'uri', '')}]")
        else:
            parts.append(f"[{kind or 'content'}]")
    if not parts and getattr(result, "structured_content", None) is not None:
        import json

        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return capped("\n".join(parts))


def capped(text: str) -> str:
    """A tool's result as sent back to the model: at most RESULT_LIMIT characters, saying so."""
    if len(text) > RESULT_LIMIT:
        text = text[:RESULT_LIMIT] + f"\n[… cut at {RESULT_LIMIT} of {len(text)} characters]"
    return text


class McpHub:
    """Every configured server, started on one background loop: in the background by `start`, or
    on first use."""

    def __init__(self, configs: dict[str, McpServerConfig], notice: Callable[[str], None] = lambda _m: None) -> None:
        self.configs = configs
        self.notice = notice  # one line for the user, from the loop's thread
        self._strays: set[str] = set()  # servers said to write stray lines on stdout
        self._servers: dict[str, _Server] = {}  # started or starting
        self._ending: list[_Server] = []  # stopped, their processes maybe still being ended
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.RLock()
        _route_sdk_logs()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        """Run `coro` on the loop and wait at most `timeout`; Ctrl-C or a timeout cancels it."""
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ToolError(f"{what} timed out after {timeout:g} s", hint="raise timeout in its [mcp] table") from None
        except BaseException:
            future.cancel()
            raise

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="mcp", daemon=True).start()
                self._loop = loop
            return self._loop

    def start(self, name: str) -> _Server:
        """Server `name`, its start begun in the background if it was not started yet (no wait)."""
        if name not in self.configs:
            known = ", ".join(sorted(self.configs)) or "none configured"
            raise ToolError(f"no MCP server named '{name}' ({known})", hint=f"add [mcp.{name}] to the config")
        with self._lock:
            server = self._servers.get(name)
            if server is None:
                server = self._servers[name] = _Server(self.configs[name], lambda: self._stray(name))
                server.started = asyncio.run_coroutine_threadsafe(server.start(), self._ensure_loop())
            return server

    def server(self, name: str) -> _Server:
        """The running server `name`: waits for its start attempt (begun now if need be); ToolError
        if it cannot start, and the next use tries again."""
        server = self.start(name)
        assert server.started is not None
        try:
            # the attempt ends itself at start_timeout; this wait is only a backstop
            server.started.result(server.config.start_timeout + 10)
        except BaseException as exc:
            self._drop(server)
            if isinstance(exc, concurrent.futures.TimeoutError):
                raise ToolError(f"starting MCP server '{name}' timed out", hint="raise start_timeout in its [mcp] table") from None
            if isinstance(exc, ToolError) or not isinstance(exc, Exception):
                raise  # ours (timed out), or Ctrl-C
            raise ToolError(f"MCP server '{name}' failed to start: {_why(exc)}",
                            hint=f"check [mcp.{name}]; its output is in {log_path(name)}") from exc
        return server

    def _stray(self, name: str) -> None:
        """Once per server: it writes lines that are not MCP on its stdout (they are in its log)."""
        if name not in self._strays:
            self._strays.add(name)
            self.notice(f"MCP server '{name}' writes lines that are not MCP to its stdout; they are "
                        f"ignored and kept in {log_path(name)}")

    def call(self, name: str, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """(result text, is_error) of one call; ToolError when the server fails or times out."""
        server = self.server(name)

        async def call() -> Any:
            return await server.client.call_tool(tool, arguments)

        try:
            result = self._run(call(), server.config.timeout, f"{name}:{tool}")
        except ToolError:
            raise
        except Exception as exc:
            # A tool's own failure comes back as a result; an exception means the connection broke
            # (the server died): stop what is left of it, and the next use starts it again.
            self._drop(server)
            raise ToolError(f"{name}:{tool} failed: {_why(exc)}", hint=f"its output is in {log_path(name)}") from exc
        return _result_text(result), bool(getattr(result, "is_error", False))

    def _drop(self, server: _Server) -> None:
        """Forget `server` (the next use starts a new one) and stop it in the background."""
        with self._lock:
            if self._servers.get(server.config.name) is server:
                del self._servers[server.config.name]
            self._ending.append(server)
            if server.started is not None:
                server.started.cancel()  # still starting (Ctrl-C while waiting): stop it
            if self._loop is not None:
                self._loop.call_soon_threadsafe(server.halt)

    def close(self) -> None:
        """Stop every server and wait (boundedly) until their processes are gone, then the loop:
        the SDK closes a server's stdin, gives it 2 s, then SIGTERMs and SIGKILLs its process group."""
        with self._lock:
            for server in list(self._servers.values()):
                self._drop(server)
            loop, self._loop = self._loop, None
            tasks = [s.task for s in self._ending if s.task is not None]
            self._ending = []
        if loop is None:
            return

        async def wait() -> None:
            await asyncio.sleep(0)  # the halts scheduled above run first
            pending = [t for t in tasks if not t.done()]
            if pending:
                _done, pending_set = await asyncio.wait(pending, timeout=8.0)
                for task in pending_set:  # past every bound of the SDK's own: end it the hard way
                    task.cancel()

        with contextlib.suppress(BaseException):
            asyncio.run_coroutine_threadsafe(wait(), loop).result(10.0)
        loop.call_soon_threadsafe(loop.stop)


def _why(exc: BaseException) -> str:
    """The innermost useful message (anyio wraps failures in exception groups)."""
    while getattr(exc, "exceptions", None):  # an ExceptionGroup (3.11+) or anyio's own on 3.10
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(exc, FileNotFoundError):
        return f"command not found ({exc.filename or exc})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
