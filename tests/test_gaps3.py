"""Gaps closed in session 39: the REPL's words for the thinking/temperature refusal, a broken [roles.x]
through the Python API, a route over a plugin's provider imported only when used, a redirect's
non-ASCII host IDNA-encoded."""

from __future__ import annotations

import pytest
from test_plugins import installed as installed  # examples/plugins/echo, pip-installed once a run


@pytest.mark.parametrize("repl", [False, True])
def test_the_thinking_refusal_names_the_temperature_as_the_front_end_sets_it(repl):
    """In the REPL the refusal's hint said `/set temperature`, but its message still said
    `--temperature`, a flag the REPL has no use for: the message is now worded per front end too."""
    from terminal_emulator import ANSI, FakeTTY

    from streamchat.environment import Environment
    from streamchat.errors import UsageError
    from streamchat.events import Outcome, TurnResult
    from streamchat.providers.anthropic import _check_thinking
    from streamchat.providers.base import ChatRequest
    from streamchat.ui import UI, report_end

    with pytest.raises(UsageError) as refused:
        _check_thinking(ChatRequest(model="m", messages=(), temperature=0.2, reasoning="high"), forced_tool=False)
    err = FakeTTY()
    env = Environment(stdin=None, stdout=FakeTTY(), stderr=err, environ={"TERM": "xterm-256color", "COLUMNS": "200"})
    report_end(TurnResult(outcome=Outcome.FAILED, error=refused.value), UI(env), False, repl=repl)
    shown = ANSI.sub("", err.getvalue())
    assert "extended thinking" in shown, shown
    assert ("--temperature" in shown) != repl and ("--reasoning" in shown) != repl, shown
    assert ("/set temperature" in shown) == repl and ("/reasoning off" in shown) == repl, shown


def test_the_python_api_reports_a_broken_role_table_at_load_as_the_cli_does(invoke, server, home, monkeypatch):
    """The CLI refuses a config with a broken [roles.x] when it loads it (exit 3, whatever the command);
    the Python API loaded the same config and said nothing, so the error waited for a use that the API
    cannot make. get_model / get_async_model now raise the CLI's ConfigError, in its words."""
    import streamchat
    from streamchat.config import load_settings

    cfg = home / "roles.toml"
    cfg.write_text('[roles.hot]\ntemperature = "very"\n')
    cli = invoke("--config", str(cfg), "-m", "openai:echo", "q")
    assert cli.code == 3 and "role 'hot': 'temperature' must be from 0 to 2" in cli.stderr, cli.stderr
    monkeypatch.setenv("STREAMCHAT_CONFIG", str(cfg))
    for get in (streamchat.get_model, streamchat.get_async_model):
        with pytest.raises(streamchat.ConfigError) as refused:
            get("openai:echo")
        assert refused.value.said() in cli.stderr
        with pytest.raises(streamchat.ConfigError):  # settings the caller loaded are checked alike
            get("openai:echo", settings=load_settings(cfg))
    cfg.write_text('[roles.hot]\ntemperature = 0.9\n')
    assert streamchat.get_model("openai:echo").name == "openai:echo"


FAR = '''\
import re
from streamchat.events import Done, TextDelta
from streamchat.providers.registry import ProviderSpec

def spec(type_, remote):
    return ProviderSpec(type=type_, adapter="far_mod:Echo", needs_key=False, key_env=None, base_url_env=None,
                        sdk_module=None, tools=False, images=False, pdfs=False, schemas=False, remote=remote,
                        priced=False, reasoning=False)

FAR, NEAR = spec("far", True), spec("near", False)

class Echo:
    params = frozenset()
    accepts = frozenset()

    def __init__(self, config, *, timeout=60.0):
        self.name, self.base_url = config.name, None

    def prepare(self, model):
        pass

    def stream(self, request):
        yield TextDelta(request.messages[-1].content)
        yield Done("stop")

    def map_error(self, exc, *, model, started):
        raise exc
'''


def test_a_route_over_a_plugins_provider_imports_the_plugin_when_used_not_at_load(tmp_path, monkeypatch):
    """parse_routes checked each deployment's spec.remote at load, and a plugin type's spec is its
    module: every command that loaded the config imported the plugin (and a broken one failed them all),
    though a [providers.x] of that type alone imports nothing until used. A plugin type's deployments
    are now checked when the route is first used; a built-in type's still at load."""
    import sys

    from test_plugins import fake_plugin

    from streamchat import plugins
    from streamchat.config import parse_settings
    from streamchat.errors import ConfigError
    from streamchat.providers import registry
    from streamchat.routing import Router

    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    fake_plugin(folder, "streamchat-far", "far_mod", FAR, {"provider.far": "far_mod:FAR", "provider.near": "far_mod:NEAR"})
    plugins.registrations.cache_clear()
    try:
        settings = parse_settings({
            "providers": {"a": {"type": "far"}, "b": {"type": "far"}, "n": {"type": "near"}},
            "routes": {"team": {"models": ["a:x", "b:x"]}, "here": {"models": ["n:x", "n:y"]}}})
        assert settings.resolve("team")[1] == "x"
        assert "far_mod" not in sys.modules  # loaded and resolved: nothing of the plugin imported
        with pytest.raises(ConfigError, match=r"\[routes.here\]: 'n:x' runs on this machine \(near\)"):
            Router(settings.routes["here"]).adapters(5.0)  # the check load made for a built-in type, at first use
        assert "far_mod" in sys.modules
        adapters = Router(settings.routes["team"]).adapters(5.0)
        assert sorted(adapters) == ["a:x", "b:x"]
        with pytest.raises(ConfigError, match="runs on this machine"):  # a built-in local type: still at load
            parse_settings({"routes": {"mine": {"models": ["local:a.gguf", "local:b.gguf"]}}})
    finally:
        plugins.registrations.cache_clear()
        sys.modules.pop("far_mod", None)
        for type_ in ("far", "near"):
            registry._SPECS.pop(type_, None)


@pytest.mark.e2e
def test_a_config_routing_over_the_echo_plugin_imports_it_only_for_that_route(home, server, installed):
    """The CLI, with examples/plugins/echo installed: a question to another model imports no plugin
    module; asking the route imports it and refuses it (echo runs on this machine), exit 3."""
    from test_plugins import plugin_env, plugin_imports

    env = plugin_env(home, server, installed)
    with open(env["STREAMCHAT_CONFIG"], "a") as f:
        f.write('[providers.e1]\ntype = "echo"\n[routes.mirror]\nmodels = ["e1:a", "e1:b"]\n')
    found, done = plugin_imports(["-m", "openai:echo", "hi"], env)
    assert done.returncode == 0 and done.stdout == "echo: hi\n", done.stderr
    assert not any(name.startswith("streamchat_echo") for name in found), found
    found, done = plugin_imports(["-m", "mirror", "hi"], env)
    assert done.returncode == 3 and "[routes.mirror]: 'e1:a' runs on this machine (echo)" in done.stderr, done.stderr
    assert "streamchat_echo.provider" in found


@pytest.mark.parametrize("location,host", [
    ("http://bücher.example:8080/v1/chat/completions", "xn--bcher-kva.example:8080"),
    ("https://BÜCHER.example/v1", "xn--bcher-kva.example"),  # lower-cased first, as httpx2 does
    ("http://straße.example/v1", "xn--strae-oqa.example"),  # IDNA 2008 (the idna package), not 2003's "strasse"
    ("http://user:pw@пример.рф:81/x?q=é", "user:pw@xn--e1afmkfd.xn--p1ai:81"),
    ("http://plain.example/v1", "plain.example"),
])
def test_a_redirect_to_a_non_ascii_host_goes_to_its_idna_name_as_httpx2s(location, host):
    """Both lean transports follow `redirected`'s URL: a non-ASCII host went on as it was, so http.client
    resolved it by Python's IDNA 2003 codec (straße → strasse, another host than the SDKs') and serve's
    reader wrote it into the Host header as Latin-1 (or failed on Cyrillic: an internal error). It is
    now the A-label httpx2 sends for the SDKs; a name IDNA refuses is a dropped exchange, as a control
    character is."""
    from urllib.parse import urlsplit

    import httpx2

    from streamchat.providers._ahttp import _netloc
    from streamchat.providers._http import StreamDropped, redirected

    target, method, body = redirected(307, "http://127.0.0.1:1/v1/chat/completions", location, "POST", b"{}", {})
    assert urlsplit(target).netloc == host and target.isascii(), target
    sdk = httpx2.URL("http://127.0.0.1:1/v1/chat/completions").join(location)
    assert urlsplit(target).hostname == sdk.raw_host.decode("ascii") and urlsplit(target).port == sdk.port
    assert _netloc(urlsplit(target)) == host.rpartition("@")[2]  # serve's Host header
    assert (method, body) == ("POST", b"{}")
    if host == "plain.example":
        with pytest.raises(StreamDropped, match="a redirect to an invalid host name"):
            redirected(307, "http://127.0.0.1:1/v1", "http://☃.example/v1", "POST", b"{}", {})
        with pytest.raises(httpx2.InvalidURL):  # httpx2 refuses it too
            httpx2.URL("http://☃.example/v1")
