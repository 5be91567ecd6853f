"""Tools: streamed tool calls from both wire formats, the approval loop, MCP servers (stdio and
streamable HTTP, built with the official SDK in tests/mcp_files_server.py), and the log.

The turn loop runs in-process against the fake server through the real openai and anthropic
SDKs and a real MCP server process; the approval prompts run through a pseudo-terminal.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pexpect
import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script
from servehelp import free_port
from test_repl import PROMPT, exchange

from streamchat.config import parse_settings
from streamchat.environment import Environment
from streamchat.errors import ToolStepLimitError, exit_code_for
from streamchat.events import Message, Outcome, ToolCall, ToolCallDelta, ToolCallStart, ToolSpec
from streamchat.exit_status import ExitStatus
from streamchat.mcp_client import McpHub
from streamchat.providers._content import anthropic_messages, anthropic_tools, openai_messages, openai_tools
from streamchat.providers._wire import AnthropicParser, OpenAIParser, events
from streamchat.service import ChatSession, Overrides
from streamchat.sinks.ndjson import NdjsonSink
from streamchat.store import ConversationLog, connect
from streamchat.tools import Approval, Toolbox
from streamchat.ui import UI

MCP_SERVER = str(Path(__file__).parent / "mcp_files_server.py")
TWO_CALLS = [("call_1", "search_files", {"pattern": "*.py"}), ("call_2", "read_file", {"path": "a.py"})]


# -- pure parts ------------------------------------------------------------------------------
def _sse(*events: tuple[str | None, dict]) -> list[str]:
    out = []
    for name, data in events:
        out.append((f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n")
    return out


def test_openai_tool_call_deltas_interleaved_become_complete_calls():
    def delta(d, finish=None):
        return (None, {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]})

    chunks = _sse(
        delta({"content": "Looking."}),
        delta({"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        delta({"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": '{"x"'}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"p": '}}]}),
        delta({"tool_calls": [{"index": 1, "function": {"arguments": ": 2}"}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '"*.py"}'}}]}),
        delta({}, "tool_calls"),
    ) + ["data: [DONE]\n\n"]
    got = list(events(chunks, OpenAIParser(provider="p", model="m")))
    assert [e for e in got if isinstance(e, ToolCallStart)] == [ToolCallStart(0, "a", "f"), ToolCallStart(1, "b", "g")]
    assert sum(isinstance(e, ToolCallDelta) for e in got) == 4
    calls = [e for e in got if isinstance(e, ToolCall)]
    assert calls == [ToolCall("a", "f", '{"p": "*.py"}', 0), ToolCall("b", "g", '{"x": 2}', 1)]
    assert calls[0].parsed() == {"p": "*.py"}


def test_anthropic_tool_use_blocks_with_input_json_deltas():
    chunks = _sse(
        ("message_start", {"message": {"usage": {"input_tokens": 3}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_stop", {"index": 0}),
        ("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "tu", "name": "f", "input": {}}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a": '}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "[1, 2]}"}}),
        ("content_block_stop", {"index": 1}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ("message_stop", {}),
    )
    got = list(events(chunks, AnthropicParser(provider="p", model="m")))
    assert ToolCallStart(1, "tu", "f") in got
    assert [e for e in got if isinstance(e, ToolCall)] == [ToolCall("tu", "f", '{"a": [1, 2]}', 1)]
    assert got[-1].finish_reason == "tool_use"


def test_tool_messages_in_each_wire_format():
    call = ToolCall("c1", "f", '{"a": 1}')
    msgs = (Message("user", "q"), Message("assistant", "", tool_calls=(call, ToolCall("c2", "g", ""))),
            Message("tool", "r1", tool_call_id="c1"), Message("tool", "no", tool_call_id="c2", is_error=True))
    o = openai_messages(msgs)
    assert o[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}}]}
    assert o[2:] == [{"role": "tool", "tool_call_id": "c1", "content": "r1"},
                     {"role": "tool", "tool_call_id": "c2", "content": "no"}]
    _system, a = anthropic_messages(msgs)
    assert a[1]["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
                               {"type": "tool_use", "id": "c2", "name": "g", "input": {}}]
    assert a[2] == {"role": "user", "content": [  # consecutive results share one user turn
        {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
        {"type": "tool_result", "tool_use_id": "c2", "content": "no", "is_error": True}]}
    flat = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": '[tool call f({"a": 1}) returned:\nr1\n]\n\n[tool call g() failed:\nno\n]'}]
    assert openai_messages(msgs, tools=False) == flat == anthropic_messages(msgs, tools=False)[1]  # a request without tools
    spec = ToolSpec("f", "does f", {"type": "object", "properties": {"a": {"type": "integer"}}})
    assert openai_tools((spec,), ("required", None))["tool_choice"] == "required"
    assert anthropic_tools((spec,), ("required", None))["tool_choice"] == {"type": "any"}
    assert anthropic_tools((spec,), ("tool", "f")) == {
        "tools": [{"name": "f", "description": "does f", "input_schema": spec.parameters}],
        "tool_choice": {"type": "tool", "name": "f"}}


def test_config_mcp_tables_are_checked():
    from streamchat.errors import ConfigError

    ok = parse_settings({"mcp": {"fs": {"command": "npx", "args": ["-y", "server"], "env": {"A": "b"}, "start_timeout": 90},
                                 "web": {"url": "http://127.0.0.1:1/mcp"}}, "approve": ["fs:read_file"],
                         "tool_steps": 4})
    assert ok.mcp["fs"].args == ("-y", "server") and ok.mcp["web"].url and ok.approve == ("fs:read_file",)
    assert ok.mcp["fs"].start_timeout == 90 and ok.mcp["fs"].timeout == 30
    for bad in ({"mcp": {"x": {}}}, {"mcp": {"x": {"command": "a", "url": "b"}}}, {"mcp": {"x": {"command": 1}}},
                {"mcp": {"x": {"command": "a", "bogus": 1}}}, {"mcp": {"x": {"command": "a", "start_timeout": 0}}},
                {"approve": [1]}, {"tool_steps": 0}):
        with pytest.raises(ConfigError):
            parse_settings(bad)


# -- the loop, in-process, through the real SDKs and a real MCP server ----------------------
@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("project")
    (path / "a.py").write_text("import httpx\n")
    (path / "b.py").write_text("x = 1\n")
    (path / "notes.txt").write_text("nothing\n")
    return path


def tool_settings(server, root: Path, **extra):
    return parse_settings({
        "retries": 0,
        "providers": {"openai": {"base_url": f"{server.url}/v1", "api_key": "k"},
                      "anthropic": {"base_url": server.url, "api_key": "k"},
                      "compat": {"type": "openai", "base_url": f"{server.url}/v1", "api_key": "k"}},
        "mcp": {"files": {"command": sys.executable, "args": [MCP_SERVER, str(root)], "timeout": 20}},
        **extra})


def quiet_ui() -> tuple[UI, io.StringIO]:
    err = io.StringIO()
    return UI(Environment(stdin=None, stdout=io.StringIO(), stderr=err, environ={})), err


def session_for(settings, model: str, *, approve=("all",), ask=None, log=None, selection=("files",)):
    ui, err = quiet_ui()
    toolbox = Toolbox(settings, McpHub(settings.mcp), list(selection), Approval(tuple(approve), ask, ui), ui)
    return ChatSession(settings, Overrides(model=model), ui=ui, toolbox=toolbox, log=log), err


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "anthropic", "compat"])
def test_tool_loop_runs_approved_calls_and_sends_results_back(server, root, tmp_path, provider):
    server.script("tooly", Script(chunks=["Let me ", "look."], tool_calls=TWO_CALLS, tool_split=4))
    settings = tool_settings(server, root)
    log = ConversationLog(connect(tmp_path / "log.db"), print)
    session, err = session_for(settings, f"{provider}:tooly", log=log)
    out = io.StringIO()
    try:
        result = session.ask("which python files import httpx?", NdjsonSink(Environment(stdout=out, environ={})))
    finally:
        session.toolbox.close()
    assert result.ok, result.message
    assert result.text == "got: a.py\nb.py | import httpx\n"
    first, second = server.requests[0].body, server.requests[1].body
    if provider == "anthropic":
        assert {t["name"] for t in first["tools"]} == {"search_files", "read_file", "slow", "crash"}
        assert "input_schema" in first["tools"][0]
        assert second["messages"][-2]["content"] == [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "search_files", "input": {"pattern": "*.py"}},
            {"type": "tool_use", "id": "call_2", "name": "read_file", "input": {"path": "a.py"}}]
        assert [b["tool_use_id"] for b in second["messages"][-1]["content"]] == ["call_1", "call_2"]
    else:
        assert first["tools"][0]["type"] == "function" and "parameters" in first["tools"][0]["function"]
        assert [c["id"] for c in second["messages"][-3]["tool_calls"]] == ["call_1", "call_2"]
        assert second["messages"][-2:] == [{"role": "tool", "tool_call_id": "call_1", "content": "a.py\nb.py"},
                                           {"role": "tool", "tool_call_id": "call_2", "content": "import httpx\n"}]
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [r["type"] for r in records]
    assert kinds.count("tool_call") == 2 and kinds.count("tool_result") == 2 and kinds[-1] == "done"
    assert records[kinds.index("tool_result")]["status"] == "ok"
    assert "→ files:search_files(pattern=\"*.py\")" in err.getvalue() and "← files:read_file" in err.getvalue()

    # The log keeps the calls and results: resumed (-c) with the *other* provider, the context is valid.
    other = "openai" if provider == "anthropic" else "anthropic"
    server.script("plain", Script(chunks=["ok"]))
    exported = log.export(result_id(log))["messages"][-1]["tool_steps"]  # `history export`
    assert [m["role"] for m in exported] == ["assistant", "tool", "tool"]
    assert exported[0]["tool_calls"][0] == {"id": "call_1", "name": "search_files", "arguments": '{"pattern": "*.py"}'}
    transcript = log.load(result_id(log)).transcript("t")  # `history show`
    assert "Let me look.\n\n_→ search_files(pattern=\"*.py\")_" in transcript and "_← 13 characters_" in transcript
    tools = (ToolSpec("read_file", "", {"type": "object", "properties": {}}),)  # tools on: the steps stay structured
    resumed = ChatSession(settings, Overrides(model=f"{other}:plain", tools=tools), conversation=log.load(result_id(log)),
                          log=log)
    assert resumed.ask("and then?", NdjsonSink(Environment(stdout=io.StringIO(), environ={}))).ok
    sent = server.requests[-1].body["messages"]
    if other == "anthropic":
        assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
        assert sent[1]["content"][1]["type"] == "tool_use" and sent[2]["content"][0]["type"] == "tool_result"
    else:
        assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "assistant", "user"]


def result_id(log: ConversationLog) -> int:
    return int(log.recent(1)[0]["id"])


@pytest.mark.slow
def test_without_a_terminal_nothing_runs_unless_approved(server, root):
    server.script("tooly", Script(chunks=[], tool_calls=TWO_CALLS))
    settings = tool_settings(server, root, approve=["files:read_file"])  # the config's list counts
    session, err = session_for(settings, "openai:tooly", approve=settings.approve)
    try:
        result = session.ask("q", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
    finally:
        session.toolbox.close()
    assert result.ok
    sent = server.requests[-1].body["messages"]
    assert "did not allow" in sent[-2]["content"] and sent[-1]["content"] == "import httpx\n"
    assert "not run: files:search_files needs approval" in err.getvalue()


@pytest.mark.slow
def test_a_runaway_loop_stops_at_the_step_limit(server, root):
    server.script("loop", Script(chunks=["again"], tool_calls=TWO_CALLS[:1], repeat_tools=True))
    settings = tool_settings(server, root, tool_steps=3)
    session, _err = session_for(settings, "anthropic:loop")
    try:
        result = session.ask("q", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
    finally:
        session.toolbox.close()
    assert result.outcome is Outcome.FAILED and isinstance(result.error, ToolStepLimitError)
    assert exit_code_for(result) == ExitStatus.TOOL and "tool_steps" in str(result.error)
    assert len(server.requests) == 3 and len(result.steps) == 4 and not result.tool_calls


@pytest.mark.slow
def test_a_server_dying_mid_call_or_hanging_is_one_line_and_the_model_is_told(server, root):
    server.script("tooly", Script(chunks=[], tool_calls=[("c1", "slow", {"seconds": 30}), ("c2", "crash", {}),
                                                         ("c3", "read_file", {"path": "b.py"})]))
    settings = tool_settings(server, root)
    settings.mcp["files"] = replace(settings.mcp["files"], timeout=2)  # calls; starting keeps its own 60 s
    session, err = session_for(settings, "openai:tooly")
    started = time.monotonic()
    try:
        result = session.ask("q", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
    finally:
        session.toolbox.close()
    assert result.ok and time.monotonic() - started < 20
    slow, crash, read = (m["content"] for m in server.requests[-1].body["messages"][-3:])
    assert slow.startswith("error: files:slow timed out after 2 s")
    assert crash.startswith("error: files:crash failed")
    assert read == "x = 1\n"  # the server was started again for the next call
    lines = err.getvalue().splitlines()
    assert sum(line.startswith("error: files:") for line in lines) == 2


def test_streamable_http_mcp_server(server, root):
    port = free_port()
    proc = subprocess.Popen([sys.executable, MCP_SERVER, str(root), "--http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import socket

        deadline = time.monotonic() + 20
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline and proc.poll() is None, "the MCP server did not start"
            time.sleep(0.1)
        server.script("reader", Script(chunks=[], tool_calls=[("c", "read_file", {"path": "b.py"})]))
        settings = parse_settings({"providers": {"compat": {"type": "openai", "base_url": f"{server.url}/v1",
                                                            "api_key": "k"}},
                                   "mcp": {"web": {"url": f"http://127.0.0.1:{port}/mcp"}}})
        session, _err = session_for(settings, "compat:reader", selection=("web:read_file",))
        try:
            result = session.ask("q", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
        finally:
            session.toolbox.close()
        assert result.ok and result.text == "got: x = 1\n"
        assert [t["function"]["name"] for t in server.requests[0].body["tools"]] == ["read_file"]
    finally:
        proc.terminate()
        proc.wait(10)


def env_with(home, server, config: str, **extra: str) -> dict[str, str]:
    """base_env, with `config` added to the config file it writes."""
    env = base_env(home, server, **extra)
    cfg = Path(env["STREAMCHAT_CONFIG"])
    cfg.write_text(cfg.read_text() + config)
    return env


def test_a_server_that_cannot_start_is_one_line_and_exit_7(invoke, home, server):
    env = env_with(home, server, '[mcp.broken]\ncommand = "/nonexistent/mcp-server"\nstart_timeout = 5\n')
    server.script("tooly", Script(chunks=["x"]))
    r = invoke("-m", "openai:tooly", "--tools", "broken", "q", env=env)
    assert r.code == ExitStatus.TOOL, r.stderr
    assert "MCP server 'broken' failed to start" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not server.requests
    r = invoke("-m", "openai:tooly", "--tools", "nothere", "q", env=env)
    assert r.code == 2 and "no MCP server named 'nothere'" in r.stderr


# -- approval at a terminal ------------------------------------------------------------------

def test_approval_prompts_yes_no_always_edit_and_ctrl_c(home, server, root, tmp_path):
    editor = tmp_path / "edit.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/a.py/b.py/' \"$1\"\n")
    editor.chmod(0o755)
    env = env_with(home, server, f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}", "{root}"]\n',
                   PROMPT_TOOLKIT_NO_CPR="1", EDITOR=str(editor))
    child = pexpect.spawn(STREAMCHAT, ["-m", "openai:t", "--tools", "files"], env=env, encoding="utf-8",
                          dimensions=(30, 120), timeout=20)
    child.logfile_read = io.StringIO()
    child.expect_exact(PROMPT)
    menu = "[y]es / [n]o / [a]lways for this tool / [e]dit arguments"
    read_a = [("c1", "read_file", {"path": "a.py"})]
    try:
        server.script("t", Script(chunks=[], tool_calls=read_a))
        child.sendline("yes please")
        child.expect_exact('→ files:read_file(path="a.py")')
        child.expect_exact(menu)
        child.sendline("y")
        child.expect_exact("got: import httpx")
        child.expect_exact(PROMPT)

        child.sendline("no this time")
        child.expect_exact(menu)
        child.sendline("n")
        child.expect_exact("refused; the model was told")
        child.expect_exact("got: The user did not allow")
        child.expect_exact(PROMPT)

        child.sendline("edit it")
        child.expect_exact(menu)
        child.sendline("e")
        child.expect_exact('→ files:read_file(path="b.py")')  # shown again, edited, and asked again
        child.expect_exact(menu)
        child.sendline("y")
        child.expect_exact("got: x = 1")
        child.expect_exact(PROMPT)

        child.sendline("always")
        child.expect_exact(menu)
        child.sendline("a")
        child.expect_exact("got: import httpx")
        child.expect_exact(PROMPT)
        child.sendline("again, no question now")
        child.expect_exact("← files:read_file")
        child.expect_exact("got: import httpx")
        child.expect_exact(PROMPT)
        assert child.logfile_read.getvalue().count(menu) == 5  # y, n, e (asked again after the edit), a

        server.script("t", Script(chunks=[], tool_calls=[("x", "search_files", {"pattern": "*.txt"})]))
        child.sendline("interrupt the question")  # read_file is always allowed now: another tool asks
        child.expect_exact(menu)
        child.sendintr()  # Ctrl-C at the approval prompt ends the turn; what follows starts on a new line
        child.expect(r"\^C\r?\n")
        child.expect_exact("[interrupted]")
        child.expect_exact(PROMPT)

        server.script("t", Script(chunks=[], tool_calls=[("s", "slow", {"seconds": 30})]))
        child.sendline("slow one")
        child.expect_exact(menu)
        child.sendline("y")
        time.sleep(0.5)
        child.sendintr()  # Ctrl-C while the tool runs: the call and the turn are cancelled
        child.expect_exact("[interrupted]")
        child.expect_exact(PROMPT)

        child.sendline("/tools")
        child.expect_exact("files (")
        child.expect_exact("slow — Sleep")
        child.expect_exact(PROMPT)
        server.script("t", Script(chunks=["still here"]))
        child.sendline("after")
        child.expect_exact("still here")
        child.expect_exact(PROMPT)

        child.sendline("/tools off files")
        child.expect_exact("files off")
        child.expect_exact(PROMPT)
        exchange(child, "no tools now", "still here")
        assert "tools" not in server.requests[-1].body
        child.sendline("/tools on files:read_file")
        child.expect_exact("tools on: files:read_file")
        child.expect_exact(PROMPT)
        exchange(child, "one tool", "still here")
        assert [t["function"]["name"] for t in server.requests[-1].body["tools"]] == ["read_file"]
    finally:
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()


def test_the_embedded_model_refuses_tools_before_loading(tmp_path):
    from streamchat.errors import BadRequestError
    from streamchat.sinks import NullSink

    settings = parse_settings({"providers": {"local": {"model_path": str(tmp_path / "never-loaded.gguf")}}})
    spec = ToolSpec("f", "", {"type": "object", "properties": {}})
    session = ChatSession(settings, Overrides(model="local", tools=(spec,)), warm=True)
    with pytest.raises(BadRequestError, match="cannot call tools"):
        session.ask("q", NullSink())
    assert not session.target.ready  # nothing was loaded to find that out


def test_approve_in_a_pipe_runs_only_what_it_names(invoke, home, server, root):
    env = env_with(home, server, f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}", "{root}"]\n')
    server.script("tooly", Script(chunks=["Looking."], tool_calls=TWO_CALLS))
    r = invoke("-m", "openai:tooly", "--tools", "files", "--approve", "files:read_file", "--json", "q", env=env)
    assert r.code == 0, r.stderr
    records = [json.loads(line) for line in r.out.splitlines()]
    results = {rec["name"]: rec["status"] for rec in records if rec["type"] == "tool_result"}
    assert results == {"search_files": "refused", "read_file": "ok"}
    assert "not run: files:search_files needs approval" in r.stderr and "Traceback" not in r.stderr
    assert "".join(rec["text"] for rec in records if rec["type"] == "text").endswith("import httpx\n")


@pytest.mark.slow
def test_on_a_terminal_steps_render_apart_with_a_spinner_while_the_model_thinks(server, root):
    """The step's text is committed before the call lines; after the tools ran, the spinner shows
    again while the model works on the results; the answer renders below, scrollback clean."""
    from terminal_emulator import Terminal, tty_env

    from streamchat.sinks.terminal import MarkdownSink

    server.script("tooly", Script(chunks=["Let me **look**."], tool_calls=TWO_CALLS[1:], first_delay=0.5))
    settings = tool_settings(server, root)
    env, out, err = tty_env()
    ui = UI(env)
    toolbox = Toolbox(settings, McpHub(settings.mcp), ["files"], Approval(("all",), None, ui), ui)
    session = ChatSession(settings, Overrides(model="openai:tooly"), ui=ui, toolbox=toolbox)
    try:
        result = session.ask("q", MarkdownSink(env, ui, size=lambda: (60, 20)))
    finally:
        toolbox.close()
    assert result.ok
    before, after = err.getvalue().split("← files:read_file")
    assert "waiting" in before and "waiting" in after  # before the first step and again before the second
    term = Terminal(60, 20)
    term.feed(out.getvalue())
    assert term.lines() == ["Let me look.", "got: import httpx"]


def test_the_repl_toolbar_shows_the_tools_that_are_on(server, root):
    from terminal_emulator import tty_env

    from streamchat.chat import ChatOptions
    from streamchat.repl import Repl

    settings = tool_settings(server, root)
    env, _out, err = tty_env()
    repl = Repl(settings, ChatOptions(overrides=Overrides(model="compat:echo"), log=False, tools=("files:read_file",)),
                env, UI(env))
    assert "tools: files:read_file" in repl.toolbar()
    repl.handle("/tools off files")
    assert "tools:" not in repl.toolbar() and "files off" in err.getvalue()
    from streamchat.errors import UsageError

    with pytest.raises(UsageError, match="no MCP server named 'nosuch'"):  # the REPL loop prints it as one line
        repl.handle("/tools on nosuch")


def test_one_tool_of_a_server_that_is_on_can_be_turned_off_and_tools_list_under_their_server(server, root, tmp_path):
    from terminal_emulator import tty_env

    from streamchat.chat import ChatOptions
    from streamchat.repl import Repl

    evil = str(Path(__file__).parent / "mcp_evil_server.py")
    settings = parse_settings({"providers": {"compat": {"type": "openai", "base_url": f"{server.url}/v1"}}, "mcp": {
        "files": {"command": sys.executable, "args": [MCP_SERVER, str(root)]},
        "evil": {"command": sys.executable, "args": [evil, str(tmp_path / "marker")]}}})
    env, _out, err = tty_env()
    repl = Repl(settings, ChatOptions(overrides=Overrides(model="compat:echo"), log=False, tools=("files", "evil")),
                env, UI(env))
    try:
        repl.handle("/tools off files:slow")
        assert "files:slow off" in err.getvalue() and "was not on" not in err.getvalue()
        assert "tools: files (not slow), evil" in repl.toolbar()
        names = {t.name for t in repl.session.toolbox.specs()}
        assert "slow" not in names and {"search_files", "crash", "files"} <= names
        err.seek(0), err.truncate()
        repl.handle("/tools")
        listing = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", err.getvalue()).splitlines() if line.strip()]
        evil_at = next(i for i, line in enumerate(listing) if line.startswith("evil ("))
        files_at = next(i for i, line in enumerate(listing) if line.startswith("files ("))
        assert listing[files_at].endswith(": on except slow")
        assert [line.split(" — ")[0].strip() for line in listing[files_at + 1:]] == [
            "search_files", "files_read_file", "crash"]  # files' own tools, under files; slow is off
        assert all(" — " in line for line in listing[evil_at + 1:files_at])  # evil's tools, under evil
        assert len(listing[evil_at + 1:files_at]) == 5
        repl.handle("/tools off files:slow")
        assert "files:slow was not on" in err.getvalue()
        repl.handle("/tools on files:slow")
        assert "slow" in {t.name for t in repl.session.toolbox.specs()}
    finally:
        repl.session.toolbox.close()


def test_continuing_a_tool_conversation_without_tools_sends_the_steps_as_text(invoke, home, server, root):
    """`-c` without --tools after a tool turn: the request defines no tools, so the earlier calls and
    results go as text of that answer (the Messages API refuses tool blocks without tools)."""
    env = env_with(home, server, f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}", "{root}"]\n')
    server.script("tooly", Script(chunks=["Let me look."], tool_calls=TWO_CALLS))
    r = invoke("-m", "openai:tooly", "--tools", "files", "--approve", "files", "which files import httpx?", env=env)
    assert r.code == 0, r.stderr
    server.script("plain", Script(chunks=["a.py does"]))
    for model in ("anthropic:plain", "openai:plain"):
        r = invoke("-c", "-m", model, "and which one is it?", env=env)
        assert r.code == 0, r.stderr
        body = server.requests[-1].body
        assert "tools" not in body
        messages = [m for m in body["messages"] if m["role"] != "system"]
        assert [m["role"] for m in messages][:3] == ["user", "assistant", "user"]
        answer = messages[1]["content"]
        assert isinstance(answer, str), answer  # text, not tool_use / tool_calls blocks
        assert answer.startswith("Let me look.\n\n[tool call search_files({\"pattern\": \"*.py\"}) returned:\na.py\nb.py\n]")
        assert "[tool call read_file({\"path\": \"a.py\"}) returned:\nimport httpx\n\n]" in answer
        assert answer.endswith("got: a.py\nb.py | import httpx\n")
