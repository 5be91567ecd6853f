"""CPU per upstream request on serve's path: the SDK's asyncio `create()` (what serve sent until
#15), serve's path (the request create() builds, captured once, sent with each answer's body by the
SDK's HTTP client) and a bare aiohttp POST of the same body; all read by streamchat's wire parser.

Why: under #15's burst a serve worker starts ~100 streams at once, and the last one's first event
waits for all their starts; most of a start was the SDK's per-call request building (options
copied, URL parsed, headers merged, retry and auth wrappers). This prints what each path costs.
In-process, sequential, 1-token answers from bench/upstream.py; medians of REPS rounds of N
requests each.

    python bench/upstream_request.py        (N=300 REPS=6 by default)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamchat.providers._sdk import use_async_transport  # noqa: E402

use_async_transport()  # as serve does, before the SDK is imported

from serve_load import run  # noqa: E402  (bench/: the clients' loop, uvloop when installed)

from streamchat.config import ProviderConfig  # noqa: E402
from streamchat.events import Message  # noqa: E402
from streamchat.providers._wire import aevents  # noqa: E402
from streamchat.providers.base import ChatRequest  # noqa: E402
from streamchat.providers.openai import OpenAIProvider  # noqa: E402

N = int(os.environ.get("N", 300))
REPS = int(os.environ.get("REPS", 6))
CREATE, SERVED, BARE = "the SDK's create()", "serve's path", "bare aiohttp"


async def measure(url: str) -> None:
    import aiohttp

    provider = OpenAIProvider(ProviderConfig("bench", "openai", base_url=f"{url}/v1", api_key="k"))
    request = ChatRequest("fast", (Message("user", "hello there"),))
    data = json.dumps({**provider._body(request), "stream": True}).encode()
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session:
        async def bare() -> None:
            async with session.post(f"{url}/v1/chat/completions", data=data, headers=headers) as response:
                async def texts() -> AsyncIterator[str]:
                    async for chunk in response.content.iter_any():
                        yield chunk.decode()

                async for _ in aevents(texts(), provider._parser(request)):
                    pass

        async def create() -> None:
            async with provider._endpoint(provider._async_client)(**provider._call_arguments(request)) as response:
                async for _ in aevents(aiter(response.iter_text()), provider._parser(request)):
                    pass

        async def served() -> None:
            async for _ in provider.astream(request):
                pass

        provider.prepare_async()
        cpu = await rounds({CREATE: create, SERVED: served, BARE: bare}, N, REPS, "request")
    bare_cost = statistics.median(cpu[BARE])
    for name in (CREATE, SERVED):
        cost = statistics.median(cpu[name])
        print(f"{name}: {cost - bare_cost:.0f} µs a request over the bare one ({cost / bare_cost:.1f}×); for 100 "
              f"streams starting at once on one worker: {(cost - bare_cost) * 100 / 1000:.0f} ms")


async def rounds(paths: dict[str, Callable[[], Awaitable[None]]], n: int, reps: int, what: str) -> dict[str, list[float]]:
    """µs of CPU per call of each path, `reps` rounds of `n` calls, interleaved so a slow spell of the
    VM hits them all (after 50 warm-up calls each: imports, pools, first-call caches); printed."""
    for path in paths.values():
        for _ in range(50):
            await path()
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(reps):
        for name, path in paths.items():
            started = time.process_time()
            for _ in range(n):
                await path()
            cpu[name].append((time.process_time() - started) / n * 1e6)
    for name, values in cpu.items():
        print(f"{name:20} µs CPU per {what}: median {statistics.median(values):5.0f}  "
              f"(rounds: {' '.join(f'{v:.0f}' for v in values)})")
    return cpu


def run_upstream_bench(measure: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """`measure(url)` on the clients' loop against bench/upstream.py (1-token answers), started and stopped here."""
    upstream = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "upstream.py"), "1", "0"],
                                stdout=subprocess.PIPE, text=True)
    try:
        url = upstream.stdout.readline().strip()  # type: ignore[union-attr]
        run(measure(url))
    finally:
        upstream.terminate()
        upstream.wait(10)


if __name__ == "__main__":
    run_upstream_bench(measure)
