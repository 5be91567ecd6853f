"""QA pass 2: stdout that cannot be written is not a reader that left (a real /dev/full)."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_a_full_disk_is_said_and_is_not_exit_141(home, server, extra):
    """QB-3: `streamchat "q" > out.txt` on a full file system ended silently with 141, the code
    `| head -1` gets — a script ignoring SIGPIPE's 141 took the lost answer for a success."""
    server.script("many", Script(chunks=[f"tok{i} " for i in range(2000)]))
    with open("/dev/full", "wb") as full:
        done = subprocess.run([STREAMCHAT, "-m", "openai:many", *extra, "q"], stdout=full, stderr=subprocess.PIPE,
                              env=base_env(home, server), timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 14, err
    assert err.count("cannot write to stdout: No space left on device") == 1, err
    assert "Traceback" not in err
    listed = subprocess.run([STREAMCHAT, "history", "-n", "1"], capture_output=True, env=base_env(home, server),
                            timeout=60)
    assert "openai:many" in listed.stdout.decode()  # the partial answer was saved


def test_a_reader_that_left_is_still_a_quiet_141(home, server):
    server.script("many", Script(chunks=[f"tok{i} " for i in range(2000)]))
    child = subprocess.Popen([STREAMCHAT, "-m", "openai:many", "q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=base_env(home, server))
    assert child.stdout is not None and child.stderr is not None
    child.stdout.read(5)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141
    assert err == ""


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["history"], ["config", "show"]])
def test_a_command_printing_to_a_full_disk_says_so_in_one_line(home, server, argv):
    """QB-3: `streamchat --version > /dev/full` printed a traceback; `history > /dev/full` was
    "internal error: OSError: [Errno 28]…", exit 1."""
    subprocess.run([STREAMCHAT, "-m", "openai:echo", "q"], capture_output=True, env=base_env(home, server), timeout=60)
    with open("/dev/full", "wb") as full:
        done = subprocess.run([STREAMCHAT, *argv], stdout=full, stderr=subprocess.PIPE,
                              env=base_env(home, server), timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 14, err
    assert err.count("\n") == 1 and err.startswith("error: cannot write to stdout: No space left on device"), err
