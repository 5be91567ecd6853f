"""Shared fixtures: the fake streaming server, a runner for the installed `streamchat` (a real
process) and one for the CLI in-process (`invoke`: the same `Result`, no subprocess); and the test
tiers, marked from the fixtures each test uses (`pytest_collection_modifyitems`)."""

from __future__ import annotations

import atexit
import functools
import inspect
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fakeserver import FakeLLMServer  # noqa: E402

# The CLI installed next to this interpreter (the venv under test), not whatever PATH finds first.
_SIBLING = Path(sys.executable).parent / "streamchat"
STREAMCHAT = str(_SIBLING) if _SIBLING.exists() else (shutil.which("streamchat") or "streamchat")


def compile_package() -> None:
    """Write streamchat's bytecode, as `pip install` does for a wheel and Python does on a first run.

    This machine sets PYTHONDONTWRITEBYTECODE=1, so an editable checkout recompiled its ~35 modules
    on every start of the CLI (measured ~60–80 ms; the REPL prompt in 392–512 ms instead of
    314–327), in each of the suite's hundreds of subprocesses and in every bench run. Compiling
    writes the files whatever that setting says; the runs then only read them.
    """
    import compileall

    import streamchat

    compileall.compile_dir(str(Path(streamchat.__file__).parent), quiet=2)


def pytest_sessionstart(session: pytest.Session) -> None:
    compile_package()


# The same setting kept pytest from caching its assertion-rewritten test modules: every collection
# (and each xdist worker's) parsed and rewrote ~70 files, 9-12 s of a run here against 2.8 s
# cached. Test modules are imported after this conftest, so they are cached now.
sys.dont_write_bytecode = False


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "slow: takes a second or more (a stress test of many runs, a timeout or retry waited out, an MCP server "
        "started); the fast tier skips it",
        "e2e: starts the streamchat CLI or a server as a real process",
        "browser: drives the page in headless Chromium",
        "tmux: drives a real tmux session",
        "local_model: loads the embedded SmolLM2 model",
        "redis: starts a real redis-server",
    ):
        config.addinivalue_line("markers", marker)


# Test tiers. A test is marked from the fixtures it uses, its module, and the helpers its body calls,
# so `pytest -m "not e2e and not browser and not tmux and not local_model and not slow"` is the fast
# in-process tier (README: "Contributing").
FIXTURE_MARKS = {
    "run": "e2e",  # the installed CLI as a subprocess
    "repl": "e2e",  # the REPL under pexpect
    "_serve": "e2e", "serve": "e2e", "client": "e2e", "serve_with_config": "e2e",  # `streamchat serve` processes
    "bash": "e2e",  # a real bash for completion
    "tls_server": "e2e",
    "page": "browser",
}
MODULE_MARKS = {"test_local": "local_model", "test_tmux_resize": "tmux", "test_web_page": "browser",
                "test_completion_shells": "e2e"}
# a test body that starts a process itself (a pexpect spawn, a subprocess, a serve process)
SPAWNS = re.compile(r"\b(?:spawn|pexpect\.spawn|subprocess\.(?:run|Popen|check_output|call)|ServeProcess|"
                    r"STREAMCHAT|sys\.executable|MCP_SERVER|imported_by)\b")  # sys.executable: a Python child (an MCP
# server, a plugin); imported_by (tests/import_probe.py): the CLI in a new interpreter


def tier_marks(item: pytest.Item) -> set[str]:
    """The tier markers `item` gets from its fixtures, its module and its body."""
    marks = {FIXTURE_MARKS[name] for name in getattr(item, "fixturenames", ()) if name in FIXTURE_MARKS}
    module = item.module.__name__ if isinstance(item, pytest.Function) and item.module is not None else ""
    if module in MODULE_MARKS:
        marks.add(MODULE_MARKS[module])
    if isinstance(item, pytest.Function) and _spawns(item.function):
        marks.add("e2e")
    return marks


@functools.cache
def _spawns(function: object) -> bool:
    """Whether a test's body starts a process; once a function, not once a parameter set (getsource
    for each of ~1,400 items was ~1 s of every collection)."""
    try:
        return bool(SPAWNS.search(inspect.getsource(function)))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in sorted(tier_marks(item) - {m.name for m in item.iter_markers()}):
            item.add_marker(mark)


# Where streamchat keeps files (platformdirs reads the process's own environment, not the `env`
# an in-process run is given): the invoke fixture and direct calls of streamchat.cost wrote the
# price cache to the real ~/.cache/streamchat. Each test has its own (a run's subprocesses inherit
# it through base_env; a test may set its own on top); this process's, for collection and the
# session's fixtures, is set here.
XDG_VARS = {"XDG_CACHE_HOME": "cache", "XDG_DATA_HOME": "data", "XDG_CONFIG_HOME": "config"}
_PROCESS_XDG = Path(tempfile.mkdtemp(prefix="streamchat-tests-xdg-"))
atexit.register(shutil.rmtree, _PROCESS_XDG, True)
os.environ.update({var: str(_PROCESS_XDG / name) for var, name in XDG_VARS.items()})


@pytest.fixture(autouse=True)
def _own_xdg_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path_factory.mktemp("xdg")
    for var, name in XDG_VARS.items():
        monkeypatch.setenv(var, str(root / name))


@pytest.fixture(scope="session")
def _server_instance() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(_server_instance: FakeLLMServer) -> FakeLLMServer:
    _server_instance.reset()
    return _server_instance


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def base_env(home: Path, server: FakeLLMServer | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "STREAMCHAT_", "NO_COLOR", "FORCE_COLOR"))}
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "STREAMCHAT_DB": str(home / "log.db"),
        "PYTHONUNBUFFERED": "1",
        "TERM": "xterm-256color",
        "STREAMCHAT_WORKERS": "1",  # serve's tests watch one process (the default, a worker per core, has its own test)
    })
    if server is not None:
        env.update({
            "OPENAI_BASE_URL": f"{server.url}/v1",
            "OPENAI_API_KEY": "sk-test-openai-SECRET123",
            "ANTHROPIC_BASE_URL": server.url,
            "ANTHROPIC_API_KEY": "sk-ant-test-SECRET456",
        })
        cfg = home / "streamchat.toml"
        cfg.write_text(f'[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\n')
        env["STREAMCHAT_CONFIG"] = str(cfg)
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8")


@pytest.fixture
def run(home: Path, server: FakeLLMServer):
    """Run the installed CLI against the fake server; returns exit code, stdout bytes, stderr."""

    def _run(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
             timeout: float = 60) -> Result:
        proc = subprocess.run(
            [STREAMCHAT, *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            env=env or base_env(home, server),
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))

    return _run


@pytest.fixture
def invoke(home: Path, server: FakeLLMServer):
    """The CLI in-process (`streamchat.cli.main(argv, env)`), with `run`'s arguments and `Result`:
    for what does not need a real process (no signals, no pipes closing, no exit timing)."""
    from streamchat.cli import main

    def _invoke(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
                timeout: float | None = None) -> Result:  # timeout: run's signature; pytest-timeout bounds a run here
        out, err = io.BytesIO(), io.BytesIO()
        code = main(list(args), env or base_env(home, server), stdin=stdin or b"", stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue().decode("utf-8", "replace"))

    return _invoke


PROVIDERS = ["openai", "anthropic", "compat"]


def _redis_says(port: int, command: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(command)
        return sock.recv(64)


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real redis-server (Debian's package, installed by .ci/run) on a free port, in `folder`, no persistence."""
    import socket
    import time

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                             "--appendonly", "no", "--daemonize", "no", "--logfile", str(folder / "redis.log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            if _redis_says(port, b"PING\r\n").startswith(b"+PONG"):
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"redis-server did not start: {(folder / 'redis.log').read_text(errors='replace')[-500:]}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def _redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_redis(tmp_path_factory.mktemp("redis"))
    yield port
    stop(proc)


@pytest.fixture
def redis_url(_redis_server: int) -> str:
    """The suite's redis-server, emptied for this test."""
    assert _redis_says(_redis_server, b"FLUSHALL\r\n").startswith(b"+OK")
    return f"redis://127.0.0.1:{_redis_server}/0"
