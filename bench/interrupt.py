"""Ctrl-C latency in the REPL: SIGINT → prompt back, and SIGINT → server sees the disconnect.

Drives the real REPL in a pseudo-terminal (pexpect) against the test suite's streaming
server on 127.0.0.1, 20 runs; prints median and max in milliseconds.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import STREAMCHAT, base_env  # noqa: E402
from fakeserver import FakeLLMServer, Script  # noqa: E402

RUNS = 20


def main() -> None:
    server = FakeLLMServer().start()
    server.script("slow", Script(chunks=[f"tok{i} " for i in range(10_000)], delay=0.02))
    home = Path(tempfile.mkdtemp())
    env = base_env(home, server, PROMPT_TOOLKIT_NO_CPR="1")
    child = pexpect.spawn(STREAMCHAT, ["-m", "openai:slow", "--no-log"], env=env, encoding="utf-8",
                          dimensions=(30, 100), timeout=10)
    child.expect_exact("›")
    to_prompt, to_disconnect = [], []
    for _ in range(RUNS):
        server.disconnects.clear()
        child.sendline("go")
        child.expect_exact("tok5 ")
        sent = time.monotonic()
        os.kill(child.pid, 2)
        child.expect_exact("›")
        to_prompt.append((time.monotonic() - sent) * 1000)
        assert server.wait_disconnect(5)
        to_disconnect.append((server.disconnects[0] - sent) * 1000)
    child.sendeof()
    child.expect(pexpect.EOF)
    server.stop()
    for name, values in (("SIGINT → prompt", to_prompt), ("SIGINT → server disconnect", to_disconnect)):
        print(f"{name:<28} median {statistics.median(values):6.1f} ms   max {max(values):6.1f} ms   (n={RUNS})")


if __name__ == "__main__":
    main()
