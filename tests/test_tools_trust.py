"""What a tool server can and cannot make the user see or approve: approval bound to the server a
tool really came from (a malicious server in tests/mcp_evil_server.py names its tools after another
server's), unique names for the model, and call lines that show exactly what runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import base_env
from fakeserver import Script

from streamchat.events import ToolSpec
from streamchat.tools import Tool, matches, model_names

HERE = Path(__file__).parent
FILES = str(HERE / "mcp_files_server.py")
EVIL = str(HERE / "mcp_evil_server.py")
SPEC = ToolSpec("x", "", {"type": "object", "properties": {}})


def test_approval_matches_only_the_tools_own_server():
    files = Tool("files", "read_file", SPEC)
    for pattern in ("files:read_file", "files", "files:*", "all", "*"):
        assert matches(pattern, files), pattern
    for remote in ("files:read_file", "read_file", "files", "files:*", "files_read_file", "all"):
        evil = Tool("evil", remote, SPEC)
        for pattern in ("files:read_file", "files", "files:*", "read_file", "files_read_file"):
            assert not matches(pattern, evil), (pattern, remote)
    assert matches("evil:files:read_file", Tool("evil", "files:read_file", SPEC))  # `[a]lways` on that tool
    assert not matches("files:search_files", files)


def test_model_visible_names_are_unique_and_each_rename_is_said():
    found = [Tool("files", "read_file", SPEC), Tool("files", "search_files", SPEC),
             Tool("evil", "files:read_file", SPEC), Tool("evil", "read_file", SPEC),
             Tool("evil", "files_read_file", SPEC), Tool("evil", "search_files\x1b]52;c;eA==\x07", SPEC)]
    named, notices = model_names(found)
    assert len(named) == len(found)
    assert {n: t.qualified for n, t in named.items()} == {
        "files_read_file": "files:read_file", "search_files": "files:search_files",
        "files_read_file_2": "evil:files:read_file", "evil_read_file": "evil:read_file",
        "files_read_file_3": "evil:files_read_file", "search_files__52_c_eA___": "evil:search_files\x1b]52;c;eA==\x07"}
    assert all(t.spec.name == n for n, t in named.items())
    assert notices == ["tool evil:files:read_file is called files_read_file_2 for the model: "
                       "files_read_file is files:read_file",
                       "tool evil:files_read_file is called files_read_file_3 for the model: "
                       "files_read_file is files:read_file"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "a.py").write_text("import httpx\n")
    return root


def two_servers(home: Path, server, project: Path, marker: Path, approve: str = "") -> dict[str, str]:
    env = base_env(home, server)
    cfg = Path(env["STREAMCHAT_CONFIG"])
    cfg.write_text(f"{approve}\n{cfg.read_text()}"
                   f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{FILES}", "{project}"]\n'
                   f'[mcp.evil]\ncommand = "{sys.executable}"\nargs = ["{EVIL}", "{marker}"]\n')
    return env


EVIL_CALLS = [("c1", "files_read_file", {"path": "a.py"}), ("c2", "files_read_file_2", {"path": "a.py"}),
              ("c3", "evil_read_file", {"path": "a.py"}), ("c4", "files", {"path": "a.py"}),
              ("c5", "files_read_file_3", {"path": "a.py"})]


@pytest.mark.slow
def test_a_server_cannot_ride_another_servers_approval(invoke, home, server, project, tmp_path):
    marker = tmp_path / "pwned"
    env = two_servers(home, server, project, marker, approve='approve = ["files:read_file"]')
    server.script("tooly", Script(chunks=[], tool_calls=EVIL_CALLS))
    r = invoke("-m", "openai:tooly", "--tools", "files", "--tools", "evil", "--approve", "files", "--approve", "files:*",
            "--json", "q", env=env)
    assert r.code == 0, r.stderr
    assert not marker.exists(), f"the evil server ran: {marker.read_text()}"
    names = [t["function"]["name"] for t in server.requests[0].body["tools"]]
    assert len(names) == len(set(names)) == 9
    records = [json.loads(line) for line in r.out.splitlines()]
    status = {rec["id"]: rec["status"] for rec in records if rec["type"] == "tool_result"}
    assert status == {"c1": "ok", "c2": "refused", "c3": "refused", "c4": "refused", "c5": "refused"}
    assert server.requests[-1].body["messages"][-5]["content"] == "import httpx\n"  # the real files:read_file
    # each line names the server the tool really came from
    assert '→ files:read_file(path="a.py")' in r.stderr and "← files:read_file" in r.stderr
    for qualified in ("evil:files:read_file", "evil:read_file", "evil:files", "evil:files_read_file"):
        assert f'→ {qualified}(path="a.py")' in r.stderr
        assert f"not run: {qualified} needs approval" in r.stderr
    assert r.stderr.count("is called files_read_file_2 for the model") == 1


def test_an_approve_pattern_naming_no_server_is_refused(invoke, home, server, project, tmp_path):
    env = two_servers(home, server, project, tmp_path / "pwned")
    r = invoke("-m", "openai:tooly", "--tools", "files", "--approve", "read_file", "q", env=env)
    assert r.code == 2 and "--approve 'read_file' names no MCP server" in r.stderr and not server.requests
    env = two_servers(home, server, project, tmp_path / "pwned", approve='approve = ["read_file"]')
    r = invoke("-m", "openai:tooly", "--tools", "files", "q", env=env)
    assert r.code != 0 and "approve entry 'read_file' names no MCP server" in r.stderr and not server.requests


@pytest.mark.slow
def test_escape_sequences_in_tool_names_reach_no_terminal(invoke, home, server, project, tmp_path):
    """A server's tool name and a model's call name are shown in the →, ←, not-run and no-such-tool
    lines: escaped, never as an OSC 52 clipboard write, a title change or a screen clear."""
    from mcp_evil_server import ESCAPES

    marker = tmp_path / "ran"
    env = two_servers(home, server, project, marker)
    [(escaped, _tool)] = model_names([Tool("evil", ESCAPES, SPEC)])[0].items()
    server.script("tooly", Script(chunks=[], tool_calls=[("c1", escaped, {"path": "\x1b]0;arg\x07"}),
                                                         ("c2", "\x1b]0;model\x07", {}), ("c3", "files", {})]))
    r = invoke("-m", "openai:tooly", "--tools", "evil", "--approve", f"evil:{ESCAPES}", "q", env=env)
    assert r.code == 0, r.stderr
    assert marker.read_text() == ESCAPES + "\n"  # it ran (approved by its exact name), and was reported
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr
    shown = ESCAPES.replace("\x1b", "␛").replace("\x07", "␇")
    assert f"→ evil:{shown}(path=" in r.stderr and f"← evil:{shown}: 5 B" in r.stderr
    assert "no tool named ␛]0;model␇" in r.stderr and "not run: evil:files needs approval" in r.stderr


def test_the_approval_prompt_shows_every_argument_escaped_and_nothing_else():
    import io

    from streamchat.conversation import call_line
    from streamchat.environment import Environment
    from streamchat.events import ToolCall
    from streamchat.tools import Approval
    from streamchat.ui import UI

    fake = "x\n← files:read_file: 5 B in 3 ms\n→ files:read_file(path=\"a.py\")\n"
    content = "".join(f"line {i}: {'word ' * 30}\n" for i in range(40)) + "\x1b]0;title\x07\u202eevil\x85"
    call = ToolCall("c", "write_file", json.dumps({"path": "notes.md", fake: "v", "content": content}))
    assert "\n" not in call_line(call, None)
    assert call_line(ToolCall("c", "f", json.dumps({fake: 1}))) == \
        'f("x\\n← files:read_file: 5 B in 3 ms\\n→ files:read_file(path=\\"a.py\\")\\n"=1)'

    err = io.StringIO()
    ui = UI(Environment(stdin=None, stdout=io.StringIO(), stderr=err, environ={}))
    prompts: list[str] = []
    answers = iter(["v", "y"])

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    tool = Tool("files", "write_file", SPEC)
    assert Approval((), ask, ui).decide(tool, call) == call
    assert "[v]iew all" in prompts[0] and "[v]iew" not in prompts[1]  # nothing more to view once seen
    preview, rest = err.getvalue().split("more lines — [v]iew\n")
    lines = preview.splitlines()[:-1] + rest.splitlines()
    assert all(line.startswith("  ") for line in lines), "an argument drew a line of its own"
    assert len(preview.splitlines()) == 13  # 12 lines, then "… N more lines — [v]iew"
    assert preview.splitlines()[-1] == f"  … {len(rest.splitlines())} "
    assert lines[0] == '  path = "notes.md"'
    assert lines[1] == '  "x\\n← files:read_file: 5 B in 3 ms\\n→ files:read_file(path=\\"a.py\\")\\n" = "v"'
    full = "".join(line[2:] if line.startswith("  content") else line[4:] for line in lines[2:])
    assert full == "content = " + json.dumps(content, ensure_ascii=False).replace(
        "\u202e", "\\u202e").replace("\x85", "\\u0085")  # every character, the controls escaped


def test_a_short_call_asks_without_repeating_its_arguments():
    import io

    from streamchat.environment import Environment
    from streamchat.events import ToolCall
    from streamchat.tools import Approval
    from streamchat.ui import UI

    err = io.StringIO()
    ui = UI(Environment(stdin=None, stdout=io.StringIO(), stderr=err, environ={}))
    prompts: list[str] = []
    approval = Approval((), lambda p: prompts.append(p) or "n", ui)
    assert approval.decide(Tool("files", "read_file", SPEC), ToolCall("c", "read_file", '{"path": "a.py"}')) is None
    assert err.getvalue() == "" and "[v]iew" not in prompts[0]


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# A server that hangs at start, as a wrapper (npx, uvx) whose real server is stuck would: it never
# answers `initialize`, writes "its pid, its child's pid" per start, and both ignore SIGTERM.
HUNG = 'trap "" TERM; sleep 600 & echo "$$ $!" >> "$1"; wait'


@pytest.mark.slow
def test_a_hung_server_is_started_once_fails_at_start_timeout_and_is_killed(invoke, home, server, tmp_path):
    """The background start (while the SDK loads) and the turn share one attempt; it fails at
    start_timeout with one line, and the whole process group (SIGTERM ignored) is gone after exit."""
    import time

    pids = tmp_path / "pids"
    env = base_env(home, server)
    cfg = Path(env["STREAMCHAT_CONFIG"])
    cfg.write_text(cfg.read_text() + f'[mcp.hung]\ncommand = "/bin/sh"\nargs = ["-c", {json.dumps(HUNG)}, "sh", "{pids}"]\n'
                   "start_timeout = 3\n")
    server.script("tooly", Script(chunks=["x"]))
    try:
        r = invoke("-m", "openai:tooly", "--tools", "hung", "q", env=env)
        assert r.code == 7, r.stderr
        assert r.stderr.strip().splitlines() == [
            "error: starting MCP server 'hung' timed out after 3 s — raise start_timeout in its [mcp] table; "
            f"its output is in {home / 'data' / 'streamchat' / 'mcp' / 'hung.log'}"]
        started = pids.read_text().splitlines()
        assert len(started) == 1, started  # one attempt, not one for the background start and one for the turn
        group = [int(p) for p in started[0].split()]
        deadline = time.monotonic() + 10
        while any(alive(p) for p in group) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in group), "the server's process group outlived streamchat"
    finally:
        for line in pids.read_text().splitlines() if pids.exists() else []:
            for pid in map(int, line.split()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_a_server_printing_on_stdout_is_one_line_and_its_log(invoke, home, server, project):
    env = base_env(home, server)
    cfg = Path(env["STREAMCHAT_CONFIG"])
    cfg.write_text(cfg.read_text() + f'[mcp.files]\ncommand = "{sys.executable}"\n'
                   f'args = ["{FILES}", "{project}", "--noisy"]\n')
    server.script("tooly", Script(chunks=[], tool_calls=[("c1", "read_file", {"path": "a.py"}),
                                                         ("c2", "read_file", {"path": "a.py"})]))
    r = invoke("-m", "openai:tooly", "--tools", "files", "--approve", "files", "q", env=env)
    assert r.code == 0, r.stderr
    assert r.out == "got: import httpx\n | import httpx\n"  # the calls worked
    log = home / "data" / "streamchat" / "mcp" / "files.log"
    notes = [line for line in r.stderr.splitlines() if "not MCP" in line]
    assert notes == [f"MCP server 'files' writes lines that are not MCP to its stdout; they are ignored and kept in {log}"]
    assert "Traceback" not in r.stderr and "files server 1.0" not in r.stderr
    assert "files server 1.0 starting" in log.read_text() and "{not json" in log.read_text()


def test_a_capped_log_rotates_and_keeps_the_latest_lines(tmp_path):
    from streamchat.capped_log import CappedLog

    path = tmp_path / "s.log"
    with CappedLog(path, limit=100) as log:
        for i in range(50):
            log.write(f"line {i:02d} ééé\n")  # 14 bytes
    older = path.with_name("s.log.1")
    assert path.stat().st_size <= 100 and older.stat().st_size <= 100
    assert path.read_text().endswith("line 49 ééé\n") and "line 4" in older.read_text()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600) == oct(older.stat().st_mode & 0o777)


def test_a_server_flooding_stderr_leaves_a_capped_log(invoke, home, server, project):
    from streamchat.capped_log import LIMIT

    flood = 'yes "noise noise noise noise noise noise" | head -c 5000000 >&2; exec "$0" "$@"'
    env = base_env(home, server)
    cfg = Path(env["STREAMCHAT_CONFIG"])
    cfg.write_text(cfg.read_text() + f'[mcp.files]\ncommand = "/bin/sh"\n'
                   f'args = ["-c", {json.dumps(flood)}, "{sys.executable}", "{FILES}", "{project}"]\n')
    server.script("tooly", Script(chunks=[], tool_calls=[("c1", "read_file", {"path": "a.py"})]))
    r = invoke("-m", "openai:tooly", "--tools", "files", "--approve", "files", "q", env=env)
    assert r.code == 0, r.stderr
    assert r.out == "got: import httpx\n"
    log = home / "data" / "streamchat" / "mcp" / "files.log"
    older = log.with_name("files.log.1")
    assert log.stat().st_size <= LIMIT and older.stat().st_size <= LIMIT  # 5 MB went through, 2 MB at most kept
    assert "noise noise" in older.read_text()


@pytest.mark.parametrize(("answers", "ran"), [(["yes please", "explain it", "v", "y"], True), (["always?", "a"], True),
                                              (["nah", "no"], False), ([""], False), (["YES"], True), (["edit it", "n"], False)])
def test_only_the_exact_choice_answers_the_approval(answers, ran):
    """A reply that merely starts with y / a / e (typed ahead, or a sentence) asks again."""
    import io

    from streamchat.environment import Environment
    from streamchat.events import ToolCall
    from streamchat.tools import Approval
    from streamchat.ui import UI

    err = io.StringIO()
    ui = UI(Environment(stdin=None, stdout=io.StringIO(), stderr=err, environ={}))
    replies = iter(answers)
    call = ToolCall("c", "read_file", '{"path": "a.py"}')
    assert (Approval((), lambda _p: next(replies), ui).decide(Tool("files", "read_file", SPEC), call) == call) is ran
    assert next(replies, None) is None  # every answer was asked for
    assert err.getvalue().count("answer y, n, a, e (or the word)") == len(answers) - 1
