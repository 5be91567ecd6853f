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
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TextIO, TypeVar

from streamchat.config import McpServerConfig
from streamchat.errors import ToolError
from streamchat.events import ToolSpec
from streamchat.private_files import open_private_append

T = TypeVar("T")
RESULT_LIMIT = 100_000  # characters of one result sent back to the model


def log_path(name: str) -> Path:
    from streamchat.config import data_dir

    return data_dir() / "mcp" / f"{name}.log"


class _Server:
    """One running server: its client session lives in a task on the hub's loop."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.tools: list[ToolSpec] = []
        self.client: Any = None
        self.stop: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None  # why it ended, once it has

    def _transport(self, errlog: TextIO) -> Any:
        if self.config.url:
            return self.config.url  # the SDK's streamable HTTP client
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=self.config.command or "", args=list(self.config.args),
                                       env=dict(self.config.env) or None)
        return stdio_client(params, errlog=errlog)

    async def run(self, ready: asyncio.Future[None]) -> None:
        from mcp import Client

        self.stop = asyncio.Event()
        path = log_path(self.config.name)
        try:
            with open_private_append(path) as errlog:
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
    text = "\n".join(parts)
    if len(text) > RESULT_LIMIT:
        text = text[:RESULT_LIMIT] + f"\n[… cut at {RESULT_LIMIT} of {len(text)} characters]"
    return text


class McpHub:
    """Every configured server, started lazily on one background loop."""

    def __init__(self, configs: dict[str, McpServerConfig]) -> None:
        self.configs = configs
        self._servers: dict[str, _Server] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str, key: str = "timeout") -> T:
        """Run `coro` on the loop and wait at most `timeout` (the [mcp] table's `key`); Ctrl-C or a
        timeout cancels it."""
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ToolError(f"{what} timed out after {timeout:g} s", hint=f"raise {key} in its [mcp] table") from None
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

    def server(self, name: str) -> _Server:
        """The running server `name`, started now if it was not (ToolError if it cannot start)."""
        if name not in self.configs:
            known = ", ".join(sorted(self.configs)) or "none configured"
            raise ToolError(f"no MCP server named '{name}' ({known})", hint=f"add [mcp.{name}] to the config")
        server = self._servers.get(name)
        if server is not None and server.client is not None:
            return server
        config = self.configs[name]
        server = _Server(config)
        loop = self._ensure_loop()

        async def start() -> None:
            ready: asyncio.Future[None] = loop.create_future()
            server.task = asyncio.ensure_future(server.run(ready))
            await ready

        try:
            self._run(start(), config.start_timeout, f"starting MCP server '{name}'", key="start_timeout")
        except ToolError:
            self._stop(server)
            raise
        except Exception as exc:
            raise ToolError(f"MCP server '{name}' failed to start: {_why(exc)}",
                            hint=f"check [mcp.{name}]; its output is in {log_path(name)}") from exc
        self._servers[name] = server
        return server

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
            self._servers.pop(name, None)
            self._stop(server)
            raise ToolError(f"{name}:{tool} failed: {_why(exc)}", hint=f"its output is in {log_path(name)}") from exc
        return _result_text(result), bool(getattr(result, "is_error", False))

    def _stop(self, server: _Server) -> None:
        loop = self._loop
        if loop is None or server.task is None:
            return
        if server.stop is not None:
            loop.call_soon_threadsafe(server.stop.set)
        task = server.task

        async def wait() -> None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 3.0)
            if not task.done():
                task.cancel()

        with contextlib.suppress(BaseException):
            asyncio.run_coroutine_threadsafe(wait(), loop).result(5.0)

    def close(self) -> None:
        """Stop every server (each gets a few seconds to exit) and the loop."""
        for server in list(self._servers.values()):
            self._stop(server)
        self._servers.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


def _why(exc: BaseException) -> str:
    """The innermost useful message (anyio wraps failures in exception groups)."""
    while getattr(exc, "exceptions", None):  # an ExceptionGroup (3.11+) or anyio's own on 3.10
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(exc, FileNotFoundError):
        return f"command not found ({exc.filename or exc})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
