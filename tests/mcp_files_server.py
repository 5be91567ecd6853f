"""A tiny filesystem MCP server for the tests, built with the official `mcp` SDK.

`python mcp_files_server.py ROOT` serves over stdio; `--http PORT` over streamable HTTP; `--noisy`
first prints lines that are not MCP on stdout.
Its tools are deterministic: search files by glob, read one, and a slow one for Ctrl-C tests.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else ".").resolve()
server = MCPServer("files")


@server.tool()
def search_files(pattern: str) -> str:
    """Paths under the root that match a glob pattern, one per line, sorted."""
    return "\n".join(sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob(pattern) if p.is_file()))


@server.tool()
def read_file(path: str) -> str:
    """The text of one file under the root."""
    target = (ROOT / path).resolve()
    if ROOT not in target.parents:
        raise ValueError(f"{path} is outside the root")
    return target.read_text(encoding="utf-8")


@server.tool()
def slow(seconds: float) -> str:
    """Sleep, then say how long it slept."""
    time.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def crash() -> str:
    """Exit the server process at once (a server that dies mid-call)."""
    os._exit(3)


if __name__ == "__main__":
    if "--noisy" in sys.argv:  # a server that prints to stdout, which is the protocol's channel
        print("files server 1.0 starting\nroot: " + str(ROOT) + "\n{not json", flush=True)
    if "--http" in sys.argv:
        server.run("streamable-http", port=int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run("stdio")
