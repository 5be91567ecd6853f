"""Plugins through the `streamchat` entry-point group: listing from metadata alone, each hook
(provider, tools, -f source) importing the plugin only when used, and a broken plugin as one line.

In-process tests read a dist-info written into a temporary folder on sys.path (importlib.metadata
parses it as it parses any installed one); the e2e tests install `examples/plugins/echo` and a
broken plugin with real pip into a folder the CLI finds on PYTHONPATH.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pexpect
import pytest
from conftest import base_env
from fakeserver import Script
from test_tools import quiet_ui

from streamchat import plugins
from streamchat.config import parse_settings
from streamchat.context import gather
from streamchat.environment import Environment
from streamchat.errors import PluginError, UsageError
from streamchat.exit_status import ExitStatus
from streamchat.service import ChatSession, Overrides
from streamchat.sinks.ndjson import NdjsonSink
from streamchat.tools import build_toolbox

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "plugins" / "echo"


def fake_plugin(where: Path, dist: str, module: str, body: str, entries: dict[str, str], version: str = "1.2.3") -> None:
    """An installed distribution as pip leaves it: its module and its .dist-info (METADATA, entry_points.txt)."""
    (where / f"{module}.py").write_text(textwrap.dedent(body))
    info = where / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[streamchat]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))


FAKE = '''\
import sys
sys.modules[__name__].IMPORTED = True

def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()

def read(rest: str):
    if rest == "missing":
        raise FileNotFoundError(rest)
    if rest == "exit":
        sys.exit(4)
    return [("fake:one", "first " + rest), ("fake:two", "second")]
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder of installed plugins on sys.path, the metadata cache cleared before and after."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    plugins.registrations.cache_clear()
    yield folder
    plugins.registrations.cache_clear()
    for name in ("fake_tools", "broken_mod"):
        sys.modules.pop(name, None)


def test_listing_reads_metadata_and_imports_nothing(site):
    fake_plugin(site, "streamchat-fake", "fake_tools", FAKE, {
        "tools.fake": "fake_tools", "source.fake": "fake_tools:read", "provider.fake": "fake_tools:SPEC",
        "widget.x": "fake_tools:nothing"})
    found = [p for p in plugins.installed() if p["name"] == "streamchat-fake"]
    assert found == [{"name": "streamchat-fake", "version": "1.2.3", "provider": ["fake"], "tools": ["fake"],
                      "source": ["fake"], "unknown": ["widget.x"]}]
    assert plugins.describe(found[0]) == [
        "streamchat-fake 1.2.3", "  provider fake  (-m fake:MODEL)", "  tools fake  (--tools fake)",
        "  source fake:  (-f fake:…)", "  widget.x: not a kind this version knows (provider, tools, source); ignored"]
    assert plugins.find("provider", "fake") is not None and plugins.find("provider", "nope") is None
    source = plugins.tool_source("fake")
    loader = plugins.source_loader("fake")
    assert source is not None and loader is not None
    ui, _err = quiet_ui()
    box = build_toolbox(parse_settings({}), [], [], ui, interactive=False)
    assert [line for line in box.describe() if "fake" in line] == [  # /tools in the REPL
        "fake (plugin streamchat-fake (tools.fake)): off"]
    assert "fake_tools" not in sys.modules  # found, described, not imported
    assert [t.name for t in source.tools] == ["shout", "read"]
    assert "fake_tools" in sys.modules  # listing its tools imported it


def test_a_plugins_tools_named_all_are_ignored_not_approved_by_approve_all(site):
    fake_plugin(site, "streamchat-greedy", "fake_tools", FAKE, {"tools.all": "fake_tools", "tools.fine": "fake_tools"})
    found = [p for p in plugins.installed() if p["name"] == "streamchat-greedy"]
    assert plugins.describe(found[0]) == ["streamchat-greedy 1.2.3",
                                          "  tools all: --approve reads 'all' as every tool; ignored",
                                          "  tools fine  (--tools fine)"]
    with pytest.raises(PluginError, match=r"plugin streamchat-greedy \(tools.all\): a tool source cannot be named 'all'"):
        plugins.tool_source("all")
    ui, _err = quiet_ui()
    box = build_toolbox(parse_settings({}), [], [], ui, interactive=False)
    assert [line for line in box.describe() if "greedy" in line] == [
        "fine (plugin streamchat-greedy (tools.fine)): off"]
    with pytest.raises(PluginError, match="cannot be named 'all'"):
        build_toolbox(parse_settings({}), ["all"], [], ui, interactive=False)
    assert "fake_tools" not in sys.modules


def test_a_plugin_source_adds_labelled_pieces_and_its_errors_are_one_line(site):
    fake_plugin(site, "streamchat-fake", "fake_tools", FAKE, {"source.fake": "fake_tools:read"})
    got = gather(["fake:abc"], stdin=lambda: None, timeout=5)
    assert [(p.name, p.text) for p in got.pieces] == [("fake:one", "first abc"), ("fake:two", "second")]
    with pytest.raises(UsageError, match=r"-f fake:missing: FileNotFoundError: missing"):
        gather(["fake:missing"], stdin=lambda: None, timeout=5)
    with pytest.raises(UsageError, match=r"-f fake:exit: SystemExit: 4"):  # QA: sys.exit() in a source ended streamchat
        gather(["fake:exit"], stdin=lambda: None, timeout=5)
    with pytest.raises(UsageError, match="no such file or directory: other:abc"):  # no plugin has that prefix
        gather(["other:abc"], stdin=lambda: None, timeout=5)


def test_two_plugins_registering_one_name_are_a_clash_not_a_silent_pick(site):
    """QA: the first distribution on the path won silently, so any installed package could
    replace another plugin's tools (run on approval as the user expects the first's) or provider."""
    fake_plugin(site, "streamchat-fake", "fake_tools", FAKE, {"tools.fake": "fake_tools", "source.fake": "fake_tools:read",
                                                                 "provider.fake": "fake_tools:SPEC"})
    fake_plugin(site, "other-pkg", "broken_mod", FAKE, {"tools.fake": "broken_mod", "source.fake": "broken_mod:read",
                                                        "provider.fake": "broken_mod:SPEC",
                                                        "tools.own": "broken_mod"})
    source, read = plugins.tool_source("fake"), plugins.source_loader("fake")
    assert source is not None and read is not None  # listed (/tools shows it) ...
    for use in (lambda: source.tools, lambda: read("x"), lambda: plugins.load_provider("fake")):  # ... refused when used
        with pytest.raises(PluginError) as err:
            use()
        assert "registered by 2 plugins (other-pkg, streamchat-fake)" in str(err.value)
        assert "pip uninstall one of them" in str(err.value) and err.value.exit_code == ExitStatus.PLUGIN
    assert plugins.tool_source("own") is not None  # what only one registers is unaffected
    assert "fake_tools" not in sys.modules and "broken_mod" not in sys.modules  # refused before importing either


def test_plugins_says_a_provider_named_like_a_built_in_type_is_ignored(site):
    """QA: `streamchat plugins` offered `-m openai:MODEL` for a plugin's provider.openai, which the
    built-in type always wins over."""
    fake_plugin(site, "other-pkg", "broken_mod", FAKE, {"provider.openai": "broken_mod:SPEC", "provider.mine": "broken_mod:SPEC"})
    found = next(p for p in plugins.installed() if p["name"] == "other-pkg")
    assert plugins.describe(found) == [
        "other-pkg 1.2.3", "  provider openai: the built-in provider type of that name is used; ignored",
        "  provider mine  (-m mine:MODEL)"]


def test_a_plugin_that_fails_to_import_is_one_line_naming_it(site):
    fake_plugin(site, "streamchat-broken", "broken_mod", "raise RuntimeError('boom')\n",
                {"tools.broken": "broken_mod", "source.broken": "broken_mod:read", "provider.broken": "broken_mod:SPEC"})
    source = plugins.tool_source("broken")
    assert source is not None  # found from its metadata; nothing imported yet
    for kind, use in (("tools", lambda: source.tools), ("source", lambda: plugins.source_loader("broken")("x")),  # type: ignore[misc]
                      ("provider", lambda: plugins.load_provider("broken"))):
        with pytest.raises(PluginError) as err:
            use()
        assert str(err.value) == (f"plugin streamchat-broken ({kind}.broken) failed to import: RuntimeError: boom — "
                                  "reinstall it, or pip uninstall streamchat-broken")
        assert err.value.exit_code == ExitStatus.PLUGIN


def test_plugin_tools_run_under_the_same_approval(site, server, tmp_path):
    fake_plugin(site, "streamchat-fake", "fake_tools", FAKE, {"tools.fake": "fake_tools:shout"})
    server.script("tooly", Script(chunks=[], tool_calls=[("c1", "shout", {"text": "hi"})]))
    settings = parse_settings({"retries": 0, "providers": {"openai": {"base_url": f"{server.url}/v1", "api_key": "k"}}})
    ui, err = quiet_ui()
    box = build_toolbox(settings, ["fake"], [], ui, interactive=False)  # --tools fake, nothing approved
    assert "fake_tools" not in sys.modules  # turned on, not yet listed
    session = ChatSession(settings, Overrides(model="openai:tooly"), ui=ui, toolbox=box)
    result = session.ask("q", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
    assert result.ok and "did not allow" in result.text
    assert "not run: fake:shout needs approval" in err.getvalue()
    box = build_toolbox(settings, ["fake"], ["fake:shout"], ui, interactive=False)
    session = ChatSession(settings, Overrides(model="openai:tooly"), ui=ui, toolbox=box)
    assert session.ask("q", NdjsonSink(Environment(stdout=io.StringIO(), environ={}))).text == "got: HI"
    assert "(plugin streamchat-fake (tools.fake)): on" in "\n".join(box.describe())
    (tmp_path / "fake.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    with pytest.raises(PluginError, match=r"its name 'fake' is taken by plugin streamchat-fake \(tools.fake\)"):
        build_toolbox(settings, [], [], ui, interactive=False, functions=[str(tmp_path / "fake.py")])


# -- the echo example, installed with pip ---------------------------------------------------------

BROKEN_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "streamchat-broken"
version = "0.0.1"

[project.entry-points.streamchat]
"provider.broken" = "streamchat_broken:SPEC"
"source.broken" = "streamchat_broken:read"

[tool.hatch.build.targets.wheel]
packages = ["streamchat_broken"]
"""


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """examples/plugins/echo and a plugin whose module raises, installed by pip into one folder:
    once a run, as each xdist worker would install them again (9-27 s here): the workers share
    their run's folder, the first installs under a lock and the others wait and reuse it."""
    import fcntl

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _install_plugins(tmp_path_factory.mktemp("plugins"), tmp_path_factory.mktemp("broken-src"))
    run_folder = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers
    with open(run_folder / "plugins.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        target, done = run_folder / "plugins", run_folder / "plugins.done"
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            _install_plugins(target, tmp_path_factory.mktemp("broken-src"))
            done.touch()
        return target


def _install_plugins(target: Path, broken: Path) -> Path:
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "streamchat_broken").mkdir()
    (broken / "streamchat_broken" / "__init__.py").write_text("raise RuntimeError('boom')\n")
    for project in (ECHO, broken):
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                               str(project)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert (target / "streamchat_echo-0.1.0.dist-info" / "entry_points.txt").exists()
    return target


def plugin_env(home: Path, server, installed: Path, **extra: str) -> dict[str, str]:
    env = base_env(home, server, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(installed)) if p)
    return env


WATCHED = """\
import sys

class Watch:  # first on sys.meta_path: told of every import, importlib's included; finds nothing itself
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.startswith(("streamchat_echo", "streamchat_broken")) or name == "streamchat.plugins":
            sys.stderr.write(f"IMPORTED {name}\\n")  # as it happens: an exit that skips atexit loses nothing
        return None

sys.meta_path.insert(0, Watch)
sys.argv = ["streamchat", *sys.argv[1:]]
from streamchat.cli import main
main()
"""


def plugin_imports(argv: list[str], env: dict[str, str]) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The plugin modules a CLI run imports, seen on sys.meta_path: importlib's imports too (entry
    points load through importlib.import_module, which PYTHONPROFILEIMPORTTIME does not report)."""
    done = subprocess.run([sys.executable, "-c", WATCHED, *argv], env=env, capture_output=True, text=True, timeout=60)
    return {line.split()[1] for line in done.stderr.splitlines() if line.startswith("IMPORTED ")}, done


@pytest.mark.e2e
def test_the_echo_plugin_streams_the_prompt_back(run, home, server, installed):
    env = plugin_env(home, server, installed)
    r = run("-m", "echo:x", "hello plugin world", env=env)
    assert r.code == 0, r.stderr
    assert r.out == "hello plugin world\n" and r.stderr == ""
    r = run("-m", "echo", "--json", "a b", env=env)  # the spec's default model
    texts = [json.loads(line) for line in r.out.splitlines()]
    assert [t["text"] for t in texts if t["type"] == "text"] == ["a", " b"] and texts[-1]["type"] == "done"
    r = run("-m", "echo:x", "-f", "echo:from the source", "q", env=env)  # the source hook; echo repeats the question
    assert '<source name="echo:from the source">\nfrom the source\n</source>' in r.out, r.stderr
    r = run("-m", "echo:x", "--tools", "echo", "q", env=env)  # its spec says it takes no tools
    assert r.code == ExitStatus.REQUEST and "echo:x cannot call tools" in r.stderr
    found, done = plugin_imports(["-m", "echo:x", "hi"], env)
    assert done.stdout == "hi\n" and found == {"streamchat.plugins", "streamchat_echo", "streamchat_echo.provider"}


@pytest.mark.slow
def test_the_python_api_finds_the_plugins_provider(installed, monkeypatch):
    import streamchat

    monkeypatch.syspath_prepend(str(installed))
    plugins.registrations.cache_clear()
    try:
        response = streamchat.get_model("echo:x").prompt("streamed back word by word")
        assert list(response) == ["streamed", " back", " word", " by", " word"]
        assert response.usage.output_tokens == 5
    finally:
        plugins.registrations.cache_clear()


@pytest.mark.e2e
def test_a_broken_plugins_provider_is_one_line_and_the_rest_works(run, home, server, installed):
    env = plugin_env(home, server, installed)
    r = run("-m", "broken:x", "hi", env=env)
    assert r.code == ExitStatus.PLUGIN
    assert r.stderr.splitlines() == ["error: plugin streamchat-broken (provider.broken) failed to import: "
                                     "RuntimeError: boom — reinstall it, or pip uninstall streamchat-broken"]
    r = run("models", env=env)  # every provider listed: the broken one is one line, the others are there
    assert r.code == 0 and "echo:echo" in r.out.splitlines(), r.stderr
    assert [line for line in r.stderr.splitlines() if "broken" in line] == [
        "broken: skipped (plugin streamchat-broken (provider.broken) failed to import: RuntimeError: boom)"]
    r = run("-m", "echo:x", "still works", env=env)
    assert r.code == 0 and r.out == "still works\n"


@pytest.mark.e2e
def test_plugins_lists_it_with_its_version(run, home, server, installed):
    env = plugin_env(home, server, installed)
    r = run("plugins", env=env)
    assert r.code == 0, r.stderr
    assert "streamchat-echo 0.1.0\n  provider echo  (-m echo:MODEL)\n  tools echo  (--tools echo)\n" in r.out
    assert "streamchat-broken 0.0.1" in r.out
    listed = {p["name"]: p for p in json.loads(run("plugins", "--json", env=env).out)}
    assert listed["streamchat-echo"] == {"name": "streamchat-echo", "version": "0.1.0", "provider": ["echo"],
                                         "tools": ["echo"], "source": ["echo"]}


@pytest.mark.e2e
def test_help_version_and_tab_import_no_plugin(home, server, installed):
    env = plugin_env(home, server, installed)
    for argv, extra, scanned in (
            (["--version"], {}, False), (["--help"], {}, False),  # not even the metadata: no slower with plugins
            (["plugins"], {}, True),
            ([], {"_STREAMCHAT_COMPLETE": "complete_bash", "_TYPER_COMPLETE_ARGS": "streamchat -m ec"}, True)):
        found, done = plugin_imports(argv, {**env, **extra})
        assert done.returncode == 0, done.stderr
        assert found == ({"streamchat.plugins"} if scanned else set()), argv
    assert "echo" in done.stdout.split()  # Tab offers the plugin's provider, from its metadata
    found, done = plugin_imports(["-m", "openai:echo", "-f", "echo:x", "hi"], env)
    assert done.returncode == 0, done.stderr
    assert found == {"streamchat.plugins", "streamchat_echo", "streamchat_echo.source"}  # what -f used, and only that


@pytest.mark.e2e
def test_a_provider_table_of_a_plugins_type_imports_it_only_when_used(home, server, installed):
    """`[providers.mine] type = "echo"`: loading the config (Tab, another model's question) reads the
    type from the plugin's metadata; its module is imported when `mine` answers."""
    env = plugin_env(home, server, installed)
    config = Path(env["STREAMCHAT_CONFIG"])
    config.write_text(config.read_text() + '[providers.mine]\ntype = "echo"\ndefault_model = "x"\n')
    for argv, extra in (([], {"_STREAMCHAT_COMPLETE": "complete_bash", "_TYPER_COMPLETE_ARGS": "streamchat -m mi"}),
                        (["-m", "openai:echo", "hi"], {})):
        found, done = plugin_imports(argv, {**env, **extra})
        assert done.returncode == 0, done.stderr
        assert not {m for m in found if m.startswith("streamchat_echo")}, (argv, found)
    assert "mine" in done.stdout or "hi" in done.stdout
    found, done = plugin_imports(["-m", "mine", "used now"], env)
    assert done.returncode == 0 and done.stdout == "used now\n", done.stderr
    assert {"streamchat_echo", "streamchat_echo.provider"} <= found
    config.write_text(config.read_text().replace('type = "echo"', 'type = "nonesuch"'))
    found, done = plugin_imports(["-m", "openai:echo", "hi"], env)
    assert done.returncode == ExitStatus.CONFIG and "[providers.mine] type 'nonesuch' is not known" in done.stderr


@pytest.mark.e2e
def test_a_broken_plugin_is_one_line_and_the_rest_works(run, home, server, installed):
    env = plugin_env(home, server, installed)
    r = run("-m", "openai:echo", "-f", "broken:x", "q", env=env)
    assert r.code == ExitStatus.PLUGIN
    assert r.stderr.splitlines() == ["error: plugin streamchat-broken (source.broken) failed to import: "
                                     "RuntimeError: boom — reinstall it, or pip uninstall streamchat-broken"]
    assert not server.requests
    r = run("-m", "openai:echo", "-f", "echo:still works", "q", env=env)
    assert r.code == 0 and "still works" in r.out and r.stderr.count("\n") == 1, r.stderr  # the -f summary line only


@pytest.mark.e2e
def test_the_echo_plugins_tools_through_the_cli(run, home, server, installed):
    env = plugin_env(home, server, installed)
    server.script("tooly", Script(chunks=[], tool_calls=[("c1", "shout", {"text": "hi"})]))
    r = run("-m", "openai:tooly", "--tools", "echo", "--approve", "echo:shout", "q", env=env)
    assert r.code == 0, r.stderr
    assert r.out == "got: HI\n" and "→ echo:shout(text=\"hi\")" in r.stderr


@pytest.mark.e2e
def test_the_repl_turns_a_plugins_tools_on_and_asks_before_each_call(home, server, installed):
    from test_repl import PROMPT, spawn

    server.script("tooly", Script(chunks=[], tool_calls=[("c1", "shout", {"text": "hi"})]))
    pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(installed)) if p)
    child = spawn(home, server, "-m", "openai:tooly", env_extra={"PYTHONPATH": pythonpath})
    try:
        child.sendline("/tools")  # no MCP server configured: the plugin's tools are listed, off
        child.expect_exact("echo (plugin streamchat-echo (tools.echo)): off")
        child.expect_exact(PROMPT)
        child.sendline("/tools on echo")
        child.expect_exact("tools on: echo")
        child.expect_exact("shout — The text in capitals.")
        child.expect_exact(PROMPT)
        child.sendline("shout hi")
        child.expect_exact('→ echo:shout(text="hi")')
        child.expect_exact("run it? [y]es")
        child.sendline("y")
        child.expect_exact("got: HI")
        child.expect_exact(PROMPT)
    finally:
        child.sendeof()
        child.expect(pexpect.EOF)
