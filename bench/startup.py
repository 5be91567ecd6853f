"""Start-up cost: a 20-token one-shot answer in a pipe, from the test suite's local streaming server.

For each client, over interleaved runs (one of each per round, the order rotated each round): the
first stdout byte and the exit (wall time from the spawn), and the peak RSS (the child's
ru_maxrss). Clients: streamchat with the openai, anthropic and compatible providers, and, when
installed, shell-gpt (`sgpt`, the issue's peer: in its own venv, PEER_SGPT or /work/peers/sgpt)
and simonw's `llm` through its OpenAI plugin; with BASELINE=DIR, streamchat from another checkout
too (PYTHONPATH=DIR: before/after in the same interleaved runs). Ratios are against sgpt's medians. Then
`--version`, `--help` and `python -c pass`, median of RUNS.

Both streamchat and the peers have their bytecode written first, as an installed copy has it
(this machine sets PYTHONDONTWRITEBYTECODE=1, so an editable checkout or a fresh venv otherwise
recompiles on every start).
"""

from __future__ import annotations

import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import STREAMCHAT, base_env, compile_package  # noqa: E402
from fakeserver import FakeLLMServer, Script  # noqa: E402

RUNS = int(os.environ.get("RUNS", "15"))
TOKENS = 20
SGPT_VENV = Path(os.environ.get("PEER_SGPT", "/work/peers/sgpt"))


def one_run(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(first stdout byte ms, exit ms, peak RSS MB) of one run whose stdout is a pipe."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    t_first = time.perf_counter()
    rest = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    t_exit = time.perf_counter()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not first:
        raise SystemExit(f"{argv[0]} failed: exit {proc.returncode}, stdout {first + rest!r}")
    return (t_first - t0) * 1000, (t_exit - t0) * 1000, usage.ru_maxrss / 1024


def clients(server: FakeLLMServer, home: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    env = base_env(home, server)
    found: dict[str, tuple[list[str], dict[str, str]]] = {
        f"streamchat {p}": ([STREAMCHAT, "-m", f"{p}:bench", "hi"], env) for p in ("openai", "anthropic", "compat")}
    baseline = os.environ.get("BASELINE")
    if baseline:
        compileall.compile_dir(str(Path(baseline) / "streamchat"), quiet=2)
        for p in ("openai", "anthropic"):
            found[f"baseline {p}"] = ([STREAMCHAT, "-m", f"{p}:bench", "hi"], {**env, "PYTHONPATH": baseline})
    sgpt = SGPT_VENV / "bin" / "sgpt"
    if sgpt.exists():
        peer_home = home / "sgpt"
        peer_home.mkdir()
        peer_env = {**base_env(peer_home), "OPENAI_API_KEY": "sk-test", "API_BASE_URL": f"{server.url}/v1",
                    "DEFAULT_MODEL": "bench", "CACHE_PATH": str(peer_home / "cache"),
                    "CHAT_CACHE_PATH": str(peer_home / "chat")}
        found["sgpt (peer)"] = ([str(sgpt), "--no-md", "--no-cache", "hi"], peer_env)
    llm = shutil.which("llm", path=str(Path(sys.executable).parent))
    if llm:  # llm's OpenAI plugin, a model pointed at the fake server
        user = home / "llm"
        user.mkdir()
        (user / "extra-openai-models.yaml").write_text(
            f'- model_id: fake\n  model_name: bench\n  api_base: "{server.url}/v1"\n  api_key_name: fake\n')
        (user / "keys.json").write_text('{"fake": "sk-test"}')
        found["llm"] = ([llm, "-m", "fake", "-n", "hi"], {**env, "LLM_USER_PATH": str(user)})
    return found


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    compile_package()  # as an installed copy has it (this machine sets PYTHONDONTWRITEBYTECODE=1)
    if SGPT_VENV.exists():
        compileall.compile_dir(str(next((SGPT_VENV / "lib").glob("python*/site-packages"))), quiet=2)
    server = FakeLLMServer().start()
    server.script("bench", Script(chunks=[f"tok{i} " for i in range(TOKENS)]))
    home = Path(tempfile.mkdtemp())
    found = clients(server, home)
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in found}
    names = list(found)
    for name in names:  # one unmeasured run each: a first run writes config files and the log's schema
        one_run(*found[name])
    for round_ in range(RUNS):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            samples[name].append(one_run(*found[name]))
    print(f"{TOKENS}-token one-shot in a pipe, medians of {RUNS} interleaved runs (range in brackets):")
    peer = samples.get("sgpt (peer)")
    medians = {name: [statistics.median(s[i] for s in runs) for i in range(3)] for name, runs in samples.items()}
    for name, runs in samples.items():
        first, done, rss = medians[name]
        line = (f"  {name:<22} first byte {first:6.0f} ms [{min(s[0] for s in runs):.0f}–{max(s[0] for s in runs):.0f}]"
                f"  exit {done:6.0f} ms [{min(s[1] for s in runs):.0f}–{max(s[1] for s in runs):.0f}]"
                f"  peak RSS {rss:5.1f} MB")
        if peer is not None and name != "sgpt (peer)":
            pf, pd, pr = medians["sgpt (peer)"]
            line += f"   vs sgpt: {first / pf:.2f}× / {done / pd:.2f}× / {rss / pr:.2f}×"
        print(line)
    env = base_env(home, server)
    rows = [
        ("python -c pass", timed([sys.executable, "-c", "pass"])),
        ("streamchat --version", timed([STREAMCHAT, "--version"], env)),
        ("streamchat --help", timed([STREAMCHAT, "--help"], env)),
    ]
    server.stop()
    for name, ms in rows:
        print(f"  {name:<22} {ms:6.0f} ms  (median of {RUNS})")


if __name__ == "__main__":
    main()
