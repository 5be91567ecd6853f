"""A Tab press: wall time of one shell-completion request (models, then conversation ids), median of
10, and whether any provider SDK was imported while answering it."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import STREAMCHAT, base_env  # noqa: E402


def main() -> None:
    env = base_env(Path(tempfile.mkdtemp()), None, _STREAMCHAT_COMPLETE="complete_zsh")
    for words in ("streamchat -m op", "streamchat history show "):
        env["_TYPER_COMPLETE_ARGS"] = words
        samples = []
        for _ in range(10):
            t0 = time.perf_counter()
            subprocess.run([STREAMCHAT], env=env, capture_output=True, check=True)
            samples.append(time.perf_counter() - t0)
        traced = subprocess.run([sys.executable, "-X", "importtime", "-c", "from streamchat.cli import main; main()"],
                                env={**env, "PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True, text=True)
        sdks = sorted({line.split("|")[-1].strip().split(".")[0] for line in traced.stderr.splitlines()
                       if line.split("|")[-1].strip().split(".")[0] in ("openai", "anthropic", "httpx2")})
        print(f"{words!r:32} {statistics.median(samples) * 1000:6.0f} ms   SDKs imported: {', '.join(sdks) or 'none'}")


if __name__ == "__main__":
    main()
