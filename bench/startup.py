"""Start-up cost: wall time of `streamchat --version`, `--help`, and a one-shot answer from the
test suite's local streaming server, next to bare `python -c pass` (10 runs each, median)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import STREAMCHAT, base_env  # noqa: E402
from fakeserver import FakeLLMServer  # noqa: E402

RUNS = 10


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    server = FakeLLMServer().start()
    env = base_env(Path(tempfile.mkdtemp()), server)
    rows = [
        ("python -c pass", timed([sys.executable, "-c", "pass"])),
        ("streamchat --version", timed([STREAMCHAT, "--version"], env)),
        ("streamchat --help", timed([STREAMCHAT, "--help"], env)),
        ("one-shot (openai SDK)", timed([STREAMCHAT, "-m", "openai:echo", "--no-log", "hi"], env)),
        ("one-shot (anthropic SDK)", timed([STREAMCHAT, "-m", "anthropic:echo", "--no-log", "hi"], env)),
    ]
    server.stop()
    for name, ms in rows:
        print(f"{name:<26} {ms:7.1f} ms  (median of {RUNS})")


if __name__ == "__main__":
    main()
