"""The live renderer end to end, on a real pseudo-terminal at full speed (80×24).

`streamchat -m openai:big q` with a code-heavy answer (SIZE bytes, 100 KB by default) and a prose
one, in 4-character tokens (the same samples as bench/render.py), against two bare clients that
write each token to the terminal as it comes:
- the raw floor: the openai SDK's raw stream and `json.loads` per chunk (the cheapest way to read
  the stream through the SDK; what streamchat's own parser is measured against in bench/chunks.py);
- the typed floor: the SDK's ordinary `create(stream=True)` loop, a pydantic object per chunk (what
  a bare SDK client does; #15's "1.35× the bare-SDK floor", with streamchat then at 130–190 µs a
  chunk, can only have been against this one).
CPU is the process's (user + system, read from /proc as the terminal receives them) between its
first text and its last, for the big answer less a 20-token one: interpreter start, imports and
exit, which vary by up to a second between runs here, are outside it. Prints CPU per token for each and
the ratios, and the bytes that reached the terminal per byte of the answer.
"""

from __future__ import annotations

import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from answers import answer_of_size, prose_of_size, tokens  # noqa: E402
from conftest import STREAMCHAT, base_env  # noqa: E402
from fakeserver import FakeLLMServer, Script  # noqa: E402

RUNS = 5
SMALL = 20
# Answer size. 100 KB, not the 20 KB: the SDK import varies by up to a second between runs
# here, and 20 KB is only ~0.2 s of rendering, so the ratio swung from 0.14× to 2.55× over three
# runs. SIZE=20000 gives the size (its terminal-bytes figure is stable either way).
SIZE = int(os.environ.get("SIZE", 100_000))

# Both floors mark the answer as streamchat's terminal sink does: the cursor is hidden as the first
# text arrives and shown after the last, so the same two moments bound what is measured.
TYPED_FLOOR = """
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="k", max_retries=0)
out = sys.stdout
started = False
for chunk in client.chat.completions.create(model=sys.argv[2], stream=True,
        messages=[{"role": "user", "content": "q"}]):
    if chunk.choices and chunk.choices[0].delta.content:
        if not started:
            out.write("\\x1b[?25l")
            started = True
        out.write(chunk.choices[0].delta.content)
        out.flush()
out.write("\\x1b[?25h")
out.flush()
"""

FLOOR = """
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="k", max_retries=0)
out = sys.stdout
started = False
with client.chat.completions.with_streaming_response.create(model=sys.argv[2], stream=True,
        messages=[{"role": "user", "content": "q"}]) as r:
    for line in r.iter_lines():
        if line.startswith("data: {"):
            delta = (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {})
            if delta.get("content"):
                if not started:
                    out.write("\\x1b[?25l")
                    started = True
                out.write(delta["content"])
                out.flush()
out.write("\\x1b[?25h")
out.flush()
"""
FIRST_TEXT, LAST_TEXT = b"\x1b[?25l", b"\x1b[?25h"


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far, from /proc (10 ms ticks)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def on_pty(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(CPU seconds from the answer's first text on screen to its last, bytes written to the
    terminal) of one run on an 80×24 pseudo-terminal. Start (interpreter, imports, connecting)
    and exit are left out: they vary by up to a second between runs here, which swamped what the
    goal is about, streaming and rendering."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(argv, env={**env, "COLUMNS": "80", "LINES": "24"}, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    window, total, marks = b"", 0, []
    while True:  # the child is reaped only after this loop, so /proc/<pid> is there to read
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        total += len(data)
        window = window[-8:] + data  # a marker may straddle two reads
        while len(marks) < 2 and (mark := (FIRST_TEXT, LAST_TEXT)[len(marks)]) in window:
            marks.append(_cpu_of(proc.pid))
            window = window.partition(mark)[2]
    _pid, status, _usage = os.wait4(proc.pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, argv
    assert len(marks) == 2, f"the answer's first and last text were not seen: {argv}"
    return marks[1] - marks[0], total


def per_token(clients: dict[str, Callable[[str], list[str]]], env: dict[str, str],
              count: int) -> dict[str, tuple[list[float], int]]:
    """For each client: (CPU µs per token of each big run, terminal bytes of a big run). A run's
    CPU is less the median of a SMALL-token answer's, which takes out what each answer costs
    once (the price database at the turn's end, the first code block's lexer). The clients' runs
    are interleaved, so a slow spell of this VM (the same work takes up to 2× as long from one
    minute to the next) hits each of them alike; ratios are taken run by run."""
    big: dict[str, list[tuple[float, int]]] = {name: [] for name in clients}
    small: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(RUNS):
        for name, argv_for in clients.items():
            big[name].append(on_pty(argv_for("big"), env))
            small[name].append(on_pty(argv_for("small"), env)[0])
    return {name: ([(cpu - statistics.median(small[name])) / (count - SMALL) * 1e6 for cpu, _ in big[name]],
                   big[name][0][1]) for name in clients}


def ratio(ours: list[float], floor: list[float]) -> str:
    """Median and range of the run-by-run ratios."""
    each = sorted(o / f for o, f in zip(ours, floor, strict=True))
    return f"{statistics.median(each):.2f}× ({each[0]:.2f}–{each[-1]:.2f})"


def main() -> None:
    server = FakeLLMServer().start()
    env = base_env(Path(tempfile.mkdtemp()), server, TERM="xterm-256color")
    try:
        for name, text in (("code-heavy", answer_of_size(SIZE)), ("prose", prose_of_size(SIZE))):
            pieces = tokens(text, 4)
            server.script("big", Script(chunks=pieces))
            server.script("small", Script(chunks=pieces[:SMALL]))
            measured = per_token({
                "ours": lambda m: [STREAMCHAT, "--no-log", "-m", f"openai:{m}", "q"],
                "raw": lambda m: [sys.executable, "-c", FLOOR, f"{server.url}/v1", m],
                "typed": lambda m: [sys.executable, "-c", TYPED_FLOOR, f"{server.url}/v1", m]},
                env, len(pieces))
            (ours, written), (raw, raw_bytes), (typed, _) = measured["ours"], measured["raw"], measured["typed"]
            size = len(text.encode())
            print(f"{name}: {len(pieces)} tokens, {size} B. CPU per token: streamchat "
                  f"{statistics.median(ours):.1f} µs, raw floor {statistics.median(raw):.1f} µs, typed floor "
                  f"{statistics.median(typed):.1f} µs; streamchat / raw floor {ratio(ours, raw)}, / typed floor "
                  f"{ratio(ours, typed)}. Terminal bytes {written / size:.2f}× the answer (raw floor "
                  f"{raw_bytes / size:.2f}×)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
