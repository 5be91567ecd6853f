"""Load on `streamchat serve`: N concurrent SSE clients against a fast upstream, loopback only.

Bounded: CLIENTS streams of CHUNKS tokens each, one round, a 120 s ceiling. Prints
p50/p99 time to first event, events/s over the run, the server's peak RSS, and how
many streams completed with a `done` event.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakeserver import FakeLLMServer, Script  # noqa: E402
from servehelp import ServeProcess  # noqa: E402

CLIENTS = int(os.environ.get("CLIENTS", 200))
CHUNKS = 50


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one(client: httpx.AsyncClient, url: str, start: float) -> tuple[float, int, bool]:
    first, events, done = None, 0, False
    async with client.stream("GET", url, params={"prompt": "go", "model": "openai:fast"}) as r:
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                events += 1
                first = first or time.perf_counter() - start
                done = done or line == "event: done"
    return first or float("nan"), events, done


async def load(url: str) -> tuple[list[tuple[float, int, bool]], float]:
    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        start = time.perf_counter()
        results = await asyncio.wait_for(asyncio.gather(*(one(client, url, time.perf_counter()) for _ in range(CLIENTS))),
                                         timeout=120)
        return results, time.perf_counter() - start


def main() -> None:
    upstream = FakeLLMServer().start()
    upstream.script("fast", Script(chunks=[f"tok{i} " for i in range(CHUNKS)]))
    serve = ServeProcess(Path(tempfile.mkdtemp()), upstream, "-m", "openai:fast")
    try:
        results, elapsed = asyncio.run(load(f"{serve.url}/stream"))
        firsts = sorted(r[0] for r in results)
        events = sum(r[1] for r in results)
        completed = sum(r[2] for r in results)
        p99 = firsts[min(len(firsts) - 1, int(len(firsts) * 0.99))]
        print(f"clients {CLIENTS} × {CHUNKS} tokens, wall {elapsed:.2f} s")
        print(f"time to first event  p50 {statistics.median(firsts) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms")
        print(f"events/s             {events / elapsed:9.0f}")
        print(f"server peak RSS      {peak_rss_mb(serve.proc.pid):9.1f} MB")
        print(f"completed streams    {completed}/{CLIENTS}")
    finally:
        serve.stop()
        upstream.stop()


if __name__ == "__main__":
    main()
