"""Renderer cost: replay synthetic answers token by token into the live Markdown sink.

The sink writes to an in-memory 80×24 terminal; a simulated clock advances 1 ms per
token (1000 tok/s), so repaints happen at the sink's own frame rate as they would live.
Prints µs/token, the 100 KB ÷ 5 KB per-token cost ratio, CPU % of one core at
1000 tok/s, time to first paint, and bytes written per byte of answer (for the code-heavy
sample, and for a prose answer).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from answers import answer_of_size, prose_of_size, tokens  # noqa: E402
from terminal_emulator import tty_env  # noqa: E402

from streamchat.events import TextDelta, TurnResult  # noqa: E402
from streamchat.sinks.terminal import MarkdownSink  # noqa: E402
from streamchat.ui import UI  # noqa: E402


def run_once(text: str) -> tuple[float, float, int]:
    env, out, _ = tty_env()
    clock = [0.0]
    sink = MarkdownSink(env, UI(env), size=lambda: (80, 24), timer=False, clock=lambda: clock[0])
    pieces = [TextDelta(p) for p in tokens(text, 4)]
    sink.begin()
    t0 = time.perf_counter()
    sink.feed(pieces[0])
    first_paint = time.perf_counter() - t0
    assert out.getvalue(), "first text was not painted at once"
    c0 = time.process_time()
    for piece in pieces[1:]:
        clock[0] += 0.001
        sink.feed(piece)
    sink.end(TurnResult())
    cpu = time.process_time() - c0
    return cpu / len(pieces) * 1e6, first_paint * 1000, len(out.getvalue().encode())


def main() -> None:
    results = {}
    print(f"{'size':>6} {'tokens':>7} {'µs/token':>9} {'CPU%@1000tok/s':>15} {'first paint ms':>15} {'out/in bytes':>12}")
    for size in (5_000, 20_000, 100_000):
        text = answer_of_size(size)
        runs = [run_once(text) for _ in range(3)]
        us = statistics.median(r[0] for r in runs)
        fp = statistics.median(r[1] for r in runs)
        ratio_bytes = runs[0][2] / len(text.encode())
        results[size] = us
        print(f"{size // 1000:>5}K {len(tokens(text, 4)):>7} {us:>9.1f} {us * 1000 / 1e4:>14.1f}% {fp:>15.2f} {ratio_bytes:>12.2f}")
    print(f"per-token cost ratio 100K/5K: {results[100_000] / results[5_000]:.2f}")
    prose = prose_of_size(20_000)
    print(f"out/in bytes of a 20K prose answer (paragraphs, a list, a little emphasis): "
          f"{run_once(prose)[2] / len(prose.encode()):.2f}")


if __name__ == "__main__":
    main()
