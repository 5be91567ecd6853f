"""The live renderer end to end, on a real pseudo-terminal at full speed (80×24).

`streamchat -m openai:big q` with a code-heavy answer (SIZE bytes, 100 KB by default) and a prose
one, in 4-character tokens (the same samples as bench/render.py), against a floor: the openai SDK's raw stream, `json.loads` per
chunk and each token written to the terminal as it comes (what a bare streaming client does).
CPU is the process's (user + system, from wait4) for the big answer minus a 20-token one, so
interpreter start and imports cancel out (median of RUNS). Prints CPU per token for both and
their ratio, and the bytes that reached the terminal per byte of the answer.
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
import threading
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

FLOOR = """
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="k", max_retries=0)
out = sys.stdout
with client.chat.completions.with_streaming_response.create(model=sys.argv[2], stream=True,
        messages=[{"role": "user", "content": "q"}]) as r:
    for line in r.iter_lines():
        if line.startswith("data: {"):
            delta = (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {})
            if delta.get("content"):
                out.write(delta["content"])
                out.flush()
"""


def on_pty(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(CPU seconds, bytes written to the terminal) of one run on an 80×24 pseudo-terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    received = [0]

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            received[0] += len(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen(argv, env={**env, "COLUMNS": "80", "LINES": "24"}, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    _pid, status, usage = os.wait4(proc.pid, 0)
    reader.join(10)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, argv
    return usage.ru_utime + usage.ru_stime, received[0]


def per_token(argvs: dict[str, Callable[[str], list[str]]], env: dict[str, str],
              count: int) -> dict[str, tuple[float, int]]:
    """For each client: (CPU µs per token, terminal bytes of a big run). The clients' runs are
    interleaved, so a slow spell of this VM (the same work takes up to 2× as long from one minute
    to the next) hits each of them alike instead of one whole measurement."""
    big: dict[str, list[tuple[float, int]]] = {name: [] for name in argvs}
    small: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(RUNS):
        for name, argv_for in argvs.items():
            big[name].append(on_pty(argv_for("big"), env))
            small[name].append(on_pty(argv_for("small"), env)[0])
    return {name: ((statistics.median(b[0] for b in big[name]) - statistics.median(small[name])) / (count - SMALL) * 1e6,
                   big[name][0][1]) for name in argvs}


def main() -> None:
    server = FakeLLMServer().start()
    env = base_env(Path(tempfile.mkdtemp()), server, TERM="xterm-256color")
    try:
        for name, text in (("code-heavy", answer_of_size(SIZE)), ("prose", prose_of_size(SIZE))):
            pieces = tokens(text, 4)
            server.script("big", Script(chunks=pieces))
            server.script("small", Script(chunks=pieces[:SMALL]))
            measured = per_token({"ours": lambda m: [STREAMCHAT, "--no-log", "-m", f"openai:{m}", "q"],
                                  "floor": lambda m: [sys.executable, "-c", FLOOR, f"{server.url}/v1", m]},
                                 env, len(pieces))
            (ours, written), (floor, raw) = measured["ours"], measured["floor"]
            size = len(text.encode())
            print(f"{name:10}  {len(pieces)} tokens, {size} B: streamchat {ours:5.1f} µs/token, floor {floor:5.1f} "
                  f"µs/token, ratio {ours / floor:.2f}×; terminal bytes {written / size:.2f}× the answer "
                  f"(floor {raw / size:.2f}×)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
