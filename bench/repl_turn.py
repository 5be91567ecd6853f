"""CPU per REPL turn, streamchat against shell-gpt's REPL, interleaved in one run (#34 goal 2).

Each REPL runs in its own pseudo-terminal against the suite's fake server, warmed up by two
questions; then ROUNDS rounds (the order rotated each round) of TURNS questions to each: a line
typed at once, the echoed answer rendered, the next prompt drawn. A turn's CPU is the process's
user + system time over a round (all its threads, from /proc), divided by TURNS. Printed per
client: the median of the rounds, their range, the mean over every turn, the first round alone (a
short conversation), and the ratio to sgpt's median. The clients: streamchat with the openai and anthropic providers, and shell-gpt
(`sgpt --repl`, from PEER_SGPT, a venv, or /work/peers/sgpt, or on PATH) when installed.
`BASELINE=DIR` adds streamchat from another checkout (PYTHONPATH=DIR) to the same rounds.

The conversation grows by one exchange a turn in every client (ROUNDS × TURNS of them), as a
real session's does.
"""

from __future__ import annotations

import compileall
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import STREAMCHAT, base_env, compile_package  # noqa: E402
from fakeserver import FakeLLMServer  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "8"))
TURNS = int(os.environ.get("TURNS", "20"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU of a process so far, all its threads (exited ones too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sgpt_path() -> Path | None:
    for venv in (os.environ.get("PEER_SGPT"), "/work/peers/sgpt"):
        if venv and (Path(venv) / "bin" / "sgpt").exists():
            return Path(venv) / "bin" / "sgpt"
    found = shutil.which("sgpt")
    return Path(found) if found else None


class Client:
    """One REPL under pexpect: `turns(n)` asks n questions and returns the CPU they cost (s)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], prompt: str) -> None:
        self.name, self.prompt, self.asked = name, prompt, 0
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", dimensions=(30, 100), timeout=60)
        self.child.expect_exact(prompt)
        time.sleep(1.0)  # the warm-up (provider, renderer) runs in the background meanwhile
        self.turns(2)

    def turns(self, n: int) -> float:
        before = cpu_s(self.child.pid)
        for _ in range(n):
            word = f"turn{self.asked}"
            self.asked += 1
            self.child.sendline(word)
            self.child.expect_exact(f"echo: {word}")
            self.child.expect_exact(self.prompt)
        return cpu_s(self.child.pid) - before

    def close(self) -> None:
        self.child.sendeof()
        self.child.expect(pexpect.EOF)


def clients(server: FakeLLMServer, home: Path) -> list[Client]:
    env = base_env(home, server, PROMPT_TOOLKIT_NO_CPR="1")
    found = [Client(f"streamchat {p}", [STREAMCHAT, "-m", f"{p}:echo"], env, "›") for p in ("openai", "anthropic")]
    baseline = os.environ.get("BASELINE")
    if baseline:
        compileall.compile_dir(str(Path(baseline) / "streamchat"), quiet=2)
        found += [Client(f"baseline {p}", [STREAMCHAT, "-m", f"{p}:echo"], {**env, "PYTHONPATH": baseline}, "›")
                  for p in ("openai", "anthropic")]
    sgpt = sgpt_path()
    if sgpt is not None:
        compileall.compile_dir(str(next((sgpt.parent.parent / "lib").glob("python*/site-packages"))), quiet=2)
        peer = home / "sgpt"
        peer.mkdir()
        peer_env = {**base_env(peer), "OPENAI_API_KEY": "sk-test", "API_BASE_URL": f"{server.url}/v1",
                    "DEFAULT_MODEL": "echo", "CACHE_PATH": str(peer / "cache"), "CHAT_CACHE_PATH": str(peer / "chat")}
        found.append(Client("sgpt (peer)", [str(sgpt), "--repl", "temp", "--no-cache"], peer_env, ">>> "))
    return found


def main() -> None:
    compile_package()  # as an installed copy has it (this machine sets PYTHONDONTWRITEBYTECODE=1)
    server = FakeLLMServer().start()
    found = clients(server, Path(tempfile.mkdtemp()))
    samples: dict[str, list[float]] = {c.name: [] for c in found}
    try:
        for round_ in range(ROUNDS):
            k = round_ % len(found)
            for client in found[k:] + found[:k]:
                samples[client.name].append(client.turns(TURNS) / TURNS * 1000)
        for client in found:
            client.close()
    finally:
        server.stop()
    print(f"CPU per REPL turn (ms; {ROUNDS} interleaved rounds of {TURNS} turns; load {os.getloadavg()[0]:.1f}):")
    peer = statistics.median(samples["sgpt (peer)"]) if "sgpt (peer)" in samples else None
    for name, runs in samples.items():
        median = statistics.median(runs)
        line = (f"  {name:<22} {median:6.2f}  [{min(runs):.1f}–{max(runs):.1f}]  mean {statistics.fmean(runs):6.2f}"
                f"  first {TURNS} turns {runs[0]:5.1f}")
        if peer is not None and name != "sgpt (peer)":
            line += f"   {median / peer:.2f}× sgpt's"
        print(line)
    if peer is None:
        print("  (shell-gpt not found: PEER_SGPT=VENV, or pip install shell-gpt in a venv of its own)")


if __name__ == "__main__":
    main()
