"""The embedded model: load time, time to first token and tokens/s for a fixed prompt (5 runs, median)."""

from __future__ import annotations

import statistics
import time

from streamchat.config import BUILTIN_PROVIDERS
from streamchat.events import Message, TextDelta, Usage
from streamchat.providers.base import ChatRequest
from streamchat.providers.local import LocalProvider

PROMPT = "Explain in three sentences why the sky is blue."
RUNS = 5


def main() -> None:
    loads, ttfts, rates = [], [], []
    for _ in range(RUNS):
        provider = LocalProvider(BUILTIN_PROVIDERS["local"])  # a fresh provider: a fresh load
        t0 = time.perf_counter()
        provider.preload("smollm2")
        loads.append(time.perf_counter() - t0)
        request = ChatRequest("smollm2", (Message("user", PROMPT),), temperature=0.0, max_tokens=128)
        start = time.perf_counter()
        first = None
        tokens = 0
        for event in provider.stream(request):
            if isinstance(event, TextDelta) and first is None:
                first = time.perf_counter()
            if isinstance(event, Usage):
                tokens = event.output_tokens or 0
        end = time.perf_counter()
        ttfts.append((first or end) - start)
        rates.append(tokens / (end - (first or start)) if tokens else 0.0)
    print(f"load         median {statistics.median(loads) * 1000:7.1f} ms")
    print(f"first token  median {statistics.median(ttfts) * 1000:7.1f} ms")
    print(f"generation   median {statistics.median(rates):7.1f} tok/s   (n={RUNS}, 128 tokens max, greedy)")


if __name__ == "__main__":
    main()
