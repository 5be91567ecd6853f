"""REPL warm start, per provider, through a real pseudo-terminal against the suite's fake server:
time from launch to the prompt, and from Enter to the first answer text for the first and for a
later question (medians of 5 runs). The SDK, the provider and the renderer load in the background
while the user types; the first question is sent PAUSE seconds after the prompt shows. Beside them,
how long importing the SDK alone takes on this machine now (it varied from 0.8 to 1.8 s for
anthropic in one day here): a first question sent before the warm-up ends waits for it.

The prompt's CPU (the process's, when the prompt shows) is printed beside its wall time: on a loaded
VM it varies far less. Then the CPU a turn costs the REPL's process (all its threads, from /proc) over TURNS more
questions, and the same for shell-gpt's REPL (`sgpt --repl`, PEER_SGPT or /work/peers/sgpt) when
installed, with the ratio."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import STREAMCHAT, base_env, compile_package  # noqa: E402
from fakeserver import FakeLLMServer  # noqa: E402

RUNS = int(os.environ.get("RUNS", "5"))
PAUSE = 3.0  # seconds: the user reads the prompt and types
TURNS = 10
SGPT = Path(os.environ.get("PEER_SGPT", "/work/peers/sgpt")) / "bin" / "sgpt"


def cpu_s(pid: int) -> float:
    """User + system CPU of a process so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_turn(child: pexpect.spawn, prompt: str, answer: str) -> float:
    """ms of CPU per question and answer, over TURNS of them, once the REPL is warm."""
    before = cpu_s(child.pid)
    for i in range(TURNS):
        child.sendline(f"turn{i}")
        child.expect_exact(answer.format(i))
        child.expect_exact(prompt)
    return (cpu_s(child.pid) - before) / TURNS * 1000


def sgpt_turn_ms(server: FakeLLMServer) -> float:
    home = Path(tempfile.mkdtemp())
    env = {**base_env(home), "OPENAI_API_KEY": "sk-test", "API_BASE_URL": f"{server.url}/v1", "DEFAULT_MODEL": "echo",
           "CACHE_PATH": str(home / "cache"), "CHAT_CACHE_PATH": str(home / "chat")}
    child = pexpect.spawn(str(SGPT), ["--repl", "temp", "--no-cache"], env=env, encoding="utf-8",
                          dimensions=(30, 100), timeout=60)
    child.expect_exact(">>> ")
    child.sendline("warm")
    child.expect_exact("echo: warm")
    child.expect_exact(">>> ")
    cost = cpu_per_turn(child, ">>> ", "echo: turn{}")
    child.sendeof()
    child.expect(pexpect.EOF)
    return cost


def one(provider: str, env: dict[str, str]) -> tuple[float, float, float, float, float]:
    start = time.perf_counter()
    child = pexpect.spawn(STREAMCHAT, ["-m", f"{provider}:echo"], env=env, encoding="utf-8",
                          dimensions=(30, 100), timeout=30)
    child.expect_exact("›")
    prompt = time.perf_counter() - start
    prompt_cpu = cpu_s(child.pid)  # the CPU it took to draw the prompt: steadier than wall time on a loaded VM
    time.sleep(PAUSE)  # the warm-up runs meanwhile
    answers = []
    for word in ("first", "second"):
        sent = time.perf_counter()
        child.sendline(word)
        child.expect_exact(f"echo: {word}")
        answers.append(time.perf_counter() - sent)
        child.expect_exact("›")
    turn = cpu_per_turn(child, "›", "echo: turn{}")
    child.sendeof()
    child.expect(pexpect.EOF)
    return prompt, answers[0], answers[1], turn, prompt_cpu


def import_ms(module: str) -> float:
    """Median wall time of importing `module` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(RUNS)) * 1000


def main() -> None:
    compile_package()  # as an installed copy has it (this machine sets PYTHONDONTWRITEBYTECODE=1)
    print("(streamchat's bytecode written first, as `pip install` or a first run does)")
    server = FakeLLMServer().start()
    env = base_env(Path(tempfile.mkdtemp()), server, PROMPT_TOOLKIT_NO_CPR="1")
    try:
        print(f"{'provider':10} {'prompt ready':>13} {'its CPU':>8} {'1st answer':>11} {'later answer':>13} {'CPU/turn':>9}"
              f" {'SDK import':>11}  (ms, median of {RUNS}; 1st question sent {PAUSE:.1f} s after the prompt)")
        peer = statistics.median(sgpt_turn_ms(server) for _ in range(RUNS)) if SGPT.exists() else None
        for provider in ("openai", "anthropic"):
            runs = [one(provider, env) for _ in range(RUNS)]
            prompt, first, later = (statistics.median(r[i] for r in runs) * 1000 for i in range(3))
            turn = statistics.median(r[3] for r in runs)
            prompt_cpu = statistics.median(r[4] for r in runs) * 1000
            print(f"{provider:10} {prompt:13.0f} {prompt_cpu:8.0f} {first:11.0f} {later:13.0f} {turn:9.1f}"
                  f" {import_ms(provider):11.0f}"
                  + (f"  CPU/turn {turn / peer:.2f}× sgpt's" if peer else ""))
        if peer is not None:
            print(f"{'sgpt':10} {'':13} {'':11} {'':13} {peer:9.1f}  (sgpt --repl, the same {TURNS} questions)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
