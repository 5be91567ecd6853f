"""The stdio transport for MCP servers: a process streamchat spawns and owns, to the last child.

The SDK's `stdio_client` is not used because a cancellation that lands between its spawn and its
shutdown handler (a `start_timeout` firing while the server starts) leaks the server's process
group, and it logs a traceback per stdout line that is not JSON-RPC. Here the process is spawned
shielded from cancellation and ended the same way whatever ends the session: stdin closed (a
graceful end only), SIGTERM to its process group, SIGKILL to what is left. The wire format itself
(one JSON-RPC message a line) is parsed with the SDK's own types.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from streamchat.capped_log import CappedLog

if TYPE_CHECKING:  # types only: config reaches this module through plugins and function tools
    from streamchat.config import McpServerConfig

GRACE = 2.0  # seconds a server has to exit on its own once its stdin is closed (as the SDK gives)
TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL to its process group
_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL


@contextlib.asynccontextmanager
async def stdio_transport(config: McpServerConfig, errlog: CappedLog,
                          stray: Callable[[], None] = lambda: None) -> AsyncIterator[tuple[Any, Any]]:
    """(read stream, write stream) for the SDK's `Client`, to the server `config` runs; its stderr
    goes to `errlog` (through a pipe: a file handed to the process would grow without bound), and
    so do stdout lines that are not JSON-RPC (a server's stray prints), each calling `stray`."""
    import anyio
    import mcp_types
    from mcp.client.stdio import get_default_environment
    from mcp.shared.message import SessionMessage

    with anyio.CancelScope(shield=True):  # once spawned, it is ours to end: no cancellation in between
        process = await anyio.open_process([config.command or "", *config.args],
                                           env=get_default_environment() | dict(config.env), start_new_session=True)
    to_session, from_server = anyio.create_memory_object_stream[Any](0)
    to_server, from_session = anyio.create_memory_object_stream[Any](0)

    async def read_stdout() -> None:
        assert process.stdout is not None
        buffer = b""
        async with to_session:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                async for chunk in process.stdout:
                    *lines, buffer = (buffer + chunk).split(b"\n")
                    for line in lines:
                        try:
                            message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                        except ValueError:
                            if line.strip():
                                errlog.write(f"[not JSON-RPC on stdout] {line.decode(errors='replace')}\n")
                                stray()
                            continue
                        await to_session.send(SessionMessage(message))

    async def read_stderr() -> None:
        assert process.stderr is not None
        decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for chunk in process.stderr:
                errlog.write(decode(chunk))

    async def write_stdin() -> None:
        assert process.stdin is not None
        async with from_session:
            try:
                async for item in from_session:
                    text = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send((text + "\n").encode())
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await to_session.aclose()  # the server stopped reading: the session sees the end

    graceful = True
    async with anyio.create_task_group() as group:
        group.start_soon(read_stdout)
        group.start_soon(read_stderr)
        group.start_soon(write_stdin)
        try:
            yield from_server, to_server
        except BaseException:
            graceful = False
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await end(process, graceful=graceful)
            group.cancel_scope.cancel()


async def end(process: Any, *, graceful: bool) -> None:
    """End a server and every process of its group: a graceful end closes its stdin and gives it
    `GRACE`; then SIGTERM, and SIGKILL `TERM_GRACE` later to whatever is still there."""
    import anyio

    if graceful:
        with contextlib.suppress(Exception):
            await process.stdin.aclose()
        with anyio.move_on_after(GRACE):
            while process.returncode is None:
                await anyio.sleep(0.02)
    if _signal_group(process, signal.SIGTERM):
        with anyio.move_on_after(TERM_GRACE):
            while _signal_group(process, 0):
                _ = process.returncode  # lets the leader be reaped, or its zombie keeps the group
                await anyio.sleep(0.02)
        _signal_group(process, _KILL)
    with anyio.move_on_after(1.0), contextlib.suppress(Exception):
        await process.aclose()


def _signal_group(process: Any, sig: int) -> bool:
    """Send `sig` to the server's process group; False once the group is gone. (Windows has no
    process groups to signal: the process itself is killed.)"""
    if not hasattr(os, "killpg"):
        if process.returncode is not None:
            return False
        if sig:
            process.kill()
        return True
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal (or a zombie on some systems): it is still there
        pass
    return True
