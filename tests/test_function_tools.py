"""`--functions FILE.py`: Python functions as tools — the schema from the signature, loading errors
as one line and exit 13, and calls run through the same approval as MCP tools, in-process against
the fake server through the real SDKs, and once through the CLI."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from conftest import base_env
from fakeserver import Script
from test_tools import quiet_ui

from streamchat.config import parse_settings
from streamchat.environment import Environment
from streamchat.errors import PluginError
from streamchat.events import ToolCall
from streamchat.exit_status import ExitStatus
from streamchat.function_tools import file_source
from streamchat.mcp_client import McpHub
from streamchat.service import ChatSession, Overrides
from streamchat.sinks.ndjson import NdjsonSink
from streamchat.tools import Approval, Toolbox, build_toolbox

FNS = '''\
from typing import Literal, Optional
import os.path
from os.path import join  # imported: not a tool

def add(a: int, b: int) -> int:
    """Add two integers."""
    with open(os.path.join(os.path.dirname(__file__), "ran.txt"), "a") as f:
        f.write(f"{a}+{b}\\n")
    return a + b

def describe(name: str, ratio: float = 0.5, tags: list[str] = [], meta: Optional[dict] = None,
             mode: Literal["short", "long"] = "short", loud: bool = False) -> dict:
    """Say who.

    More lines of doc."""
    return {"name": name, "ratio": ratio, "tags": tags, "mode": mode, "loud": loud, "meta": meta}

def fails(x: int) -> str:
    """Always raises."""
    raise ValueError(f"no {x}")

def _helper(x):
    return x
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_schema_and_description_come_from_the_signature_and_docstring(tmp_path):
    source = file_source(write(tmp_path, "fns.py", FNS))
    specs = {spec.name: spec for spec in source.tools}
    assert list(specs) == ["add", "describe", "fails"]  # in the order written; private and imported ones left out
    assert specs["add"].description == "Add two integers."
    assert specs["add"].parameters == {"type": "object", "additionalProperties": False, "required": ["a", "b"],
                                       "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    d = specs["describe"]
    assert d.description == "Say who.\n\nMore lines of doc."
    assert d.parameters["required"] == ["name"]
    props = d.parameters["properties"]
    assert props["name"] == {"type": "string"}
    assert props["ratio"] == {"type": "number", "default": 0.5}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "default": []}
    assert props["meta"] == {"anyOf": [{"type": "object", "additionalProperties": True}, {"type": "null"}], "default": None}
    assert props["mode"] == {"enum": ["short", "long"], "type": "string", "default": "short"}
    assert props["loud"] == {"type": "boolean", "default": False}


def test_calls_validate_arguments_and_report_failures_to_the_model(tmp_path):
    source = file_source(write(tmp_path, "fns.py", FNS))
    assert source.call("add", {"a": 2, "b": 3}) == ("5", False)
    assert (tmp_path / "ran.txt").read_text() == "2+3\n"
    text, is_error = source.call("describe", {"name": "x", "mode": "long"})
    assert not is_error and json.loads(text)["mode"] == "long"
    text, is_error = source.call("add", {"a": "two", "b": 3})
    assert is_error and text.startswith("invalid arguments: a: ")
    assert source.call("add", {"a": 1, "b": 2, "c": 3})[1]  # an argument it does not take
    assert source.call("fails", {"x": 4}) == ("ValueError: no 4", True)
    assert (tmp_path / "ran.txt").read_text() == "2+3\n"  # no invalid call ran


def test_a_function_exiting_or_printing_neither_ends_streamchat_nor_writes_into_the_answer(tmp_path, capsys):
    """QA: sys.exit() in a tool ended streamchat mid-turn with the function's code and no line, and a
    print() (at import or in a call) went to stdout, into the answer a pipe keeps."""
    source = file_source(write(tmp_path, "noisy.py", '''\
        import sys
        print("imported")

        def leave(code: int) -> int:
            """Exits."""
            sys.exit(code)

        def chatty(x: int) -> int:
            """Prints."""
            print("chatting", x)
            return x
        '''))
    assert source.call("leave", {"code": 5}) == ("SystemExit: 5", True)
    assert source.call("chatty", {"x": 2}) == ("2", False)
    out, err = capsys.readouterr()
    assert out == "" and err == "imported\nchatting 2\n"


@pytest.mark.parametrize(("text", "message"), [
    ("def add(a, b: int) -> int:\n    return a + b\n", "fns.py: add() has no type hint for 'a'"),
    ("def f(*args: int) -> int:\n    return 0\n", "f() takes *args: int, which a tool call cannot pass"),
    ("x = 1\n\ndef f(:\n", "failed to import: SyntaxError: invalid syntax (line 3)"),
    ("import os\n\nos.environ['X']\n", "failed to import: KeyError: 'X' (line 3)"),
    ("import sys\nsys.exit(3)\n", "failed to import: SystemExit: 3 (line 2)"),
    ("X = 1\n", "defines no functions"),
])
def test_a_file_that_cannot_become_tools_is_one_plugin_error(tmp_path, text, message):
    with pytest.raises(PluginError) as err:
        file_source(write(tmp_path, "fns.py", text))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == ExitStatus.PLUGIN == 13


def test_a_file_whose_stem_holds_a_colon_is_refused(tmp_path):
    """QA: `a:b.py` became the source `a:b`, whose tools no --approve could name (SOURCE:TOOL)."""
    with pytest.raises(PluginError) as err:
        file_source(write(tmp_path, "a:b.py", "def add(a: int) -> int:\n    return a\n"))
    assert "a:b.py: a tool source's name cannot hold ':'" in str(err.value) and err.value.exit_code == 13


@pytest.mark.parametrize("stem", ["all", "*"])
def test_a_file_named_as_approve_reads_every_tool_is_refused(tmp_path, stem):
    """`all.py` became the source `all`, so `--approve all` meant every tool and `all:add` alike."""
    with pytest.raises(PluginError) as err:
        file_source(write(tmp_path, f"{stem}.py", "def add(a: int) -> int:\n    return a\n"))
    assert f"a tool source cannot be named '{stem}' (--approve {stem} means every tool)" in str(err.value)
    assert "\n" not in str(err.value) and err.value.exit_code == ExitStatus.PLUGIN


def test_an_mcp_server_named_all_is_refused_too():
    from streamchat.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[mcp.all\]: a tool server cannot be named 'all'"):
        parse_settings({"mcp": {"all": {"command": "true"}}})


def test_the_cli_refuses_all_py_in_one_line(invoke, tmp_path):
    path = write(tmp_path, "all.py", "def add(a: int) -> int:\n    return a\n")
    r = invoke("-m", "openai:tooly", "--functions", str(path), "--approve", "all", "q")
    assert r.code == ExitStatus.PLUGIN == 13
    assert r.stderr.strip().splitlines() == [
        f"error: --functions {path}: a tool source cannot be named 'all' (--approve all means every tool) — "
        "rename the file: its name is the tools' source name"]


SLOW = '''\
import time

def hangs(seconds: float) -> str:
    """Sleeps (blocked in C: it cannot be stopped, only abandoned)."""
    time.sleep(seconds)
    return "woke"

def spins(n: int) -> str:
    """A Python loop that never ends: stopped once abandoned."""
    global SPUN
    SPUN = 0
    while True:
        SPUN += 1

def quick(n: int) -> int:
    """Returns at once."""
    return n + 1
'''


def test_a_function_that_hangs_is_abandoned_after_its_timeout(tmp_path):
    import sys
    import threading
    import time

    source = file_source(write(tmp_path, "slow.py", SLOW))
    from streamchat.errors import ToolError

    with pytest.raises(ToolError) as err:
        source.call("hangs", {"seconds": 30}, timeout=0.3)
    assert str(err.value) == ("slow:hangs() did not return within 0.3 s; it was abandoned — raise function_timeout "
                              "in the config, or pass --function-timeout SECONDS")
    assert source.call("quick", {"n": 1}, timeout=5) == ("2", False)  # the next call runs as before
    with pytest.raises(ToolError, match="spins"):
        source.call("spins", {"n": 1}, timeout=0.3)
    module = next(m for m in sys.modules.values() if getattr(m, "__file__", None) == str(tmp_path / "slow.py"))
    deadline = time.monotonic() + 10
    while any(t.name == "function spins" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    spun = module.SPUN
    time.sleep(0.2)
    assert module.SPUN == spun > 0  # the runaway loop was stopped, not left burning a core
    assert not any(t.name == "function spins" for t in threading.enumerate())


def test_a_timed_out_call_is_a_tool_error_to_the_model_and_one_line_to_the_user(server, tmp_path):
    write(tmp_path, "slow.py", SLOW)
    server.script("tooly", Script(chunks=["Waiting."], tool_calls=[("c1", "hangs", {"seconds": 30})]))
    settings = settings_for(server, tmp_path, functions=["slow.py"], function_timeout=0.3)
    ui, err = quiet_ui()
    box = build_toolbox(settings, [], ["slow:hangs"], ui, interactive=False)
    session = ChatSession(settings, Overrides(model="openai:tooly"), ui=ui, toolbox=box)
    result = session.ask("wait", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
    assert result.ok, result.message
    sent = [m for m in server.requests[-1].body["messages"] if m["role"] == "tool"]
    assert sent and "slow:hangs() did not return within 0.3 s" in sent[0]["content"]
    lines = [line for line in err.getvalue().splitlines() if "did not return" in line]
    assert lines == ["error: slow:hangs() did not return within 0.3 s; it was abandoned — raise function_timeout "
                     "in the config, or pass --function-timeout SECONDS"]


def test_function_timeout_is_checked_and_defaults_to_a_minute(invoke, tmp_path):
    from streamchat.errors import ConfigError

    assert parse_settings({}).function_timeout == 60
    with pytest.raises(ConfigError, match="'function_timeout' must be from 0.1 to 86400"):
        parse_settings({"function_timeout": 0})
    r = invoke("--function-timeout", "0", "q")
    assert r.code == ExitStatus.USAGE and "must be from 0.1 to 86400" in r.stderr
    assert "--function-timeout" in invoke("--help").out


def test_names_that_clash_are_refused(tmp_path, server):
    ui, _err = quiet_ui()
    first = write(tmp_path, "fns.py", FNS)
    (tmp_path / "other").mkdir()
    same_stem = write(tmp_path / "other", "fns.py", "def sub(a: int, b: int) -> int:\n    return a - b\n")
    with pytest.raises(PluginError, match="its name 'fns' is taken by"):
        build_toolbox(parse_settings({}), [], [], ui, interactive=False, functions=[str(first), str(same_stem)])
    settings = parse_settings({"mcp": {"fns": {"command": "true"}}})
    with pytest.raises(PluginError, match="taken by MCP server 'fns'"):
        build_toolbox(settings, [], [], ui, interactive=False, functions=[str(first)])
    twin = write(tmp_path, "more.py", "def add(x: float, y: float) -> float:\n    return x + y\n")
    box = build_toolbox(parse_settings({}), [], [], ui, interactive=False, functions=[str(first), str(twin)])
    with pytest.raises(PluginError, match="two tools are named add: fns:add and more:add"):
        box.tools()


def settings_for(server, tmp_path: Path, **extra):
    return parse_settings({"retries": 0, "providers": {"openai": {"base_url": f"{server.url}/v1", "api_key": "k"},
                                                       "anthropic": {"base_url": server.url, "api_key": "k"}}, **extra},
                          tmp_path / "config.toml")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_model_calls_add_and_answers_from_its_result(server, tmp_path, provider):
    write(tmp_path, "fns.py", FNS)
    server.script("tooly", Script(chunks=["Adding."], tool_calls=[("c1", "add", {"a": 2, "b": 3})]))
    settings = settings_for(server, tmp_path, functions=["fns.py"])  # relative to the config file
    ui, err = quiet_ui()
    box = build_toolbox(settings, [], ["fns:add"], ui, interactive=False)
    session = ChatSession(settings, Overrides(model=f"{provider}:tooly"), ui=ui, toolbox=box)
    result = session.ask("what is 2 + 3?", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
    assert result.ok, result.message
    assert result.text.endswith("got: 5")
    first = server.requests[0].body
    names = [t.get("name") or t["function"]["name"] for t in first["tools"]]
    assert names == ["add", "describe", "fails"]
    assert "→ fns:add(a=2, b=3)" in err.getvalue() and "← fns:add: 1 B in" in err.getvalue()
    assert (tmp_path / "ran.txt").read_text() == "2+3\n"


def test_a_refused_call_does_not_run(server, tmp_path):
    path = write(tmp_path, "fns.py", FNS)
    server.script("tooly", Script(chunks=[], tool_calls=[("c1", "add", {"a": 2, "b": 3})]))
    settings = settings_for(server, tmp_path)
    ui, err = quiet_ui()
    answers = iter(["n"])
    approval = Approval((), lambda _q: next(answers), ui)  # the user says no at the terminal
    box = Toolbox(settings, McpHub({}), ["fns"], approval, ui, [file_source(path)])
    session = ChatSession(settings, Overrides(model="openai:tooly"), ui=ui, toolbox=box)
    result = session.ask("what is 2 + 3?", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
    assert result.ok and "did not allow" in result.text
    assert not (tmp_path / "ran.txt").exists()
    assert "refused; the model was told" in err.getvalue()
    # without a terminal, and not approved: not run either, and the line says how to approve it
    ui, err = quiet_ui()
    box = build_toolbox(settings, [], [], ui, interactive=False, functions=[str(path)])
    assert box.run(ToolCall("c2", "add", '{"a": 1, "b": 1}')).status == "refused"
    assert "pass --approve fns:add" in err.getvalue() and not (tmp_path / "ran.txt").exists()


def test_approve_names_a_function_source(tmp_path):
    ui, _err = quiet_ui()
    path = write(tmp_path, "fns.py", FNS)
    build_toolbox(parse_settings({}), [], ["fns", "fns:add"], ui, interactive=False, functions=[str(path)])
    from streamchat.errors import UsageError

    with pytest.raises(UsageError, match="'nope:add' names no MCP server or tool source"):
        build_toolbox(parse_settings({}), [], ["nope:add"], ui, interactive=False, functions=[str(path)])


@pytest.mark.e2e
def test_the_cli_runs_functions_and_refuses_a_broken_file(invoke, home, server, tmp_path):
    write(tmp_path, "fns.py", FNS)
    server.script("tooly", Script(chunks=["Adding."], tool_calls=[("c1", "add", {"a": 2, "b": 3})]))
    r = invoke("-m", "openai:tooly", "--functions", str(tmp_path / "fns.py"), "--approve", "fns:add", "what is 2 + 3?")
    assert r.code == 0, r.stderr
    assert r.out.endswith("got: 5\n") and "→ fns:add(a=2, b=3)" in r.stderr
    bad = write(tmp_path, "bad.py", "def add(a, b):\n    return a + b\n")
    r = invoke("-m", "openai:tooly", "--functions", str(bad), "q")
    assert r.code == ExitStatus.PLUGIN, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: {bad}: add() has no type hint for 'a' — annotate every parameter, e.g. def add(a: str), "
        "or name it _add to keep it out"]
    env = base_env(home, server)
    Path(env["STREAMCHAT_CONFIG"]).write_text(f'functions = ["{tmp_path / "nothere.py"}"]\n')
    r = invoke("-m", "openai:tooly", "q", env=env)
    assert r.code == ExitStatus.PLUGIN and "no such Python file" in r.stderr and "Traceback" not in r.stderr


def test_the_configs_functions_are_left_out_for_a_model_without_tools(tmp_path):
    """`functions` in the config is on in every chat; with the embedded model (the default) they
    are not sent rather than refused, while --functions asked for them and is refused (exit 4)."""
    from streamchat.errors import BadRequestError, StreamchatError
    from streamchat.sinks import NullSink

    write(tmp_path, "fns.py", FNS)
    settings = parse_settings({"functions": ["fns.py"],
                               "providers": {"local": {"model_path": str(tmp_path / "never-loaded.gguf")}}},
                              tmp_path / "config.toml")
    ui, _err = quiet_ui()
    box = build_toolbox(settings, [], [], ui, interactive=False)
    session = ChatSession(settings, Overrides(model="local:/nowhere.gguf"), ui=ui, toolbox=box, warm=True)
    assert box.active and session.request("q").tools == ()
    try:
        outcome = session.ask("q", NullSink()).message
    except StreamchatError as err:
        outcome = str(err)
    assert "model file not found" in outcome  # on to loading the model: not refused for the tools
    openai = ChatSession(parse_settings({"functions": ["fns.py"], "providers": {"openai": {"api_key": "k"}}},
                                        tmp_path / "config.toml"), Overrides(model="openai:gpt-4o-mini"), toolbox=box)
    assert [t.name for t in openai.request("q").tools] == ["add", "describe", "fails"]
    asked = build_toolbox(settings, [], [], ui, interactive=False, functions=[str(tmp_path / "fns.py")])
    session = ChatSession(settings, Overrides(model="local:/nowhere.gguf"), ui=ui, toolbox=asked, warm=True)
    with pytest.raises(BadRequestError, match="cannot call tools"):
        session.ask("q", NullSink())


def test_a_function_raising_a_base_exception_is_a_tool_error_not_a_timeout(tmp_path):
    """QA-8: a custom BaseException (or a KeyboardInterrupt the function raises itself) killed the
    worker thread with a traceback on stderr, and the call was reported as "did not return within
    60 s" — after under a second."""
    import threading
    import time

    source = file_source(write(tmp_path, "stop.py", '''\
        class Stop(BaseException):
            pass

        def add(a: int, b: int) -> int:
            """Add."""
            raise Stop("nope")

        def interrupt(a: int) -> int:
            """Interrupts."""
            raise KeyboardInterrupt
        '''))
    died: list[object] = []
    hook, threading.excepthook = threading.excepthook, died.append
    try:
        start = time.monotonic()
        assert source.call("add", {"a": 2, "b": 3}, timeout=60) == ("Stop: nope", True)
        assert source.call("interrupt", {"a": 1}, timeout=60) == ("KeyboardInterrupt", True)
        assert time.monotonic() - start < 10
        assert source.call("add", {"a": 2, "b": 3}) == ("Stop: nope", True)  # without a timeout too
    finally:
        threading.excepthook = hook
    assert died == []  # no thread traceback
