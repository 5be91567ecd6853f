"""CPU per serve turn on a route against the same turn on one model (#32): what routing adds.

Each request is what serve does for one: a `ChatSession` built from the settings (the model
resolved, the route's `RoutedProvider` made), then `ask_async` to the end. A plain model
(`a:fast`) against a route over two deployments of the same upstream (`team`: a:fast, b:fast,
round-robin). In-process, sequential, 1-token answers from bench/upstream.py, rounds interleaved;
medians of REPS rounds of N turns.

    python bench/route_request.py        (N=300 REPS=6 by default)
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Awaitable, Callable

from upstream_request import rounds, run_upstream_bench  # bench/: starts bench/upstream.py; serve's aiohttp transport

from streamchat.config import parse_settings
from streamchat.service import ChatSession, Overrides

N = int(os.environ.get("N", 300))
REPS = int(os.environ.get("REPS", 6))


async def measure(url: str) -> None:
    settings = parse_settings({
        "retries": 0, "log": False,
        "providers": {name: {"type": "openai", "base_url": f"{url}/v1", "api_key": "k"} for name in ("a", "b")},
        "routes": {"team": {"models": ["a:fast", "b:fast"], "strategy": "round-robin"}}})

    def turn(model: str) -> Callable[[], Awaitable[None]]:
        async def one() -> None:
            session = ChatSession(settings, Overrides(model=model))
            async for _ in session.ask_async("hello there"):
                pass
        return one

    cpu = await rounds({"one model (a:fast)": turn("a:fast"), "route (team)": turn("team")}, N, REPS, "turn")
    plain, routed = (statistics.median(v) for v in cpu.values())
    print(f"a route adds {routed - plain:.0f} µs a turn ({routed / plain:.2f}×)")


if __name__ == "__main__":
    run_upstream_bench(measure)
