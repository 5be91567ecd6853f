"""What a CLI run imports: streamchat's main in a fresh interpreter, then which watched modules it loaded.

One probe for every "this command must not import X" test (SDKs, redis, the price database), so the
way a run is started and read back is the same everywhere."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping

_PROBE = """
import sys
watch = sys.argv[1].split(",")
sys.argv = ["streamchat", *sys.argv[2:]]
from streamchat.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nIMPORTED:" + ",".join(m for m in watch if m in sys.modules))
"""


def imported_by(argv: Iterable[str], watch: Iterable[str], *, env: Mapping[str, str] | None = None,
                timeout: float = 60) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Run `streamchat ARGV` in a new interpreter; the watched modules it imported, and the run."""
    done = subprocess.run([sys.executable, "-c", _PROBE, ",".join(watch), *argv], env=None if env is None else dict(env),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    assert "\nIMPORTED:" in done.stderr, done.stderr  # the probe ran to its end
    return {m for m in done.stderr.rsplit("\nIMPORTED:", 1)[1].strip().split(",") if m}, done
