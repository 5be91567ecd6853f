"""Cost per streamed chunk in a pipe: CPU of `streamchat -m P:big q | cat` for a 100,000-chunk answer
minus a 20-chunk one, divided by the difference (median of 3 runs), per provider; beside it the
floor of the same stream read with the openai SDK's raw response and json.loads per line.

100,000 and not 20,000: the SDK import alone varies by up to a second from run to run here
(`import anthropic` 0.8–1.8 s), and 20,000 chunks are only ~0.3 s of work, so one run printed
openai at 12.9 µs and the next at 31.8 µs; with 100,000 two runs gave 14.1 and 17.7."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import STREAMCHAT, base_env  # noqa: E402
from fakeserver import FakeLLMServer, Script  # noqa: E402

BIG, SMALL, RUNS = 100_000, 20, 3

FLOOR = """
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="k", max_retries=0)
with client.chat.completions.with_streaming_response.create(model=sys.argv[2], stream=True,
        messages=[{"role": "user", "content": "q"}]) as r:
    for line in r.iter_lines():
        if line.startswith("data: {"):
            json.loads(line[6:])
"""


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, argv
    return usage.ru_utime + usage.ru_stime


def per_chunk_us(argv_for: callable, env: dict[str, str]) -> float:  # type: ignore[valid-type]
    big = statistics.median(cpu_seconds(argv_for("big"), env) for _ in range(RUNS))
    small = statistics.median(cpu_seconds(argv_for("small"), env) for _ in range(RUNS))
    return (big - small) / (BIG - SMALL) * 1e6


def main() -> None:
    server = FakeLLMServer().start()
    server.script("big", Script(chunks=[f"t{i} " for i in range(BIG)]))
    server.script("small", Script(chunks=[f"t{i} " for i in range(SMALL)]))
    env = base_env(Path(tempfile.mkdtemp()), server)
    try:
        for provider in ("openai", "anthropic"):
            cost = per_chunk_us(lambda m, p=provider: [STREAMCHAT, "--no-log", "-m", f"{p}:{m}", "q"], env)
            print(f"{provider:9} streamchat in a pipe   {cost:6.1f} µs per chunk")
        floor = per_chunk_us(lambda m: [sys.executable, "-c", FLOOR, f"{server.url}/v1", m], env)
        print(f"openai    raw SDK + json.loads {floor:6.1f} µs per chunk (floor)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
