"""The provider registry: what each type can do, as data, read by config, cost, serve's policy,
`keys` and the chat service — and a new type (registered as a plugin would) works end to end with
no other change."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from collections.abc import Iterator

import pytest

import streamchat
from streamchat.config import parse_settings
from streamchat.cost import context_window, turn_cost
from streamchat.errors import AuthError, BadRequestError, ConfigError, UsageError
from streamchat.events import Done, Stats, TextDelta, ToolSpec, Usage
from streamchat.providers import registry
from streamchat.providers.base import ChatRequest, EventStream
from streamchat.providers.registry import ProviderSpec, all_specs, register, spec_for
from streamchat.schema_request import ResponseSchema
from streamchat.serve.policy import ModelPolicy, Refused
from streamchat.service import ChatSession, Overrides, preimport
from streamchat.sinks import NullSink

ECHO = ProviderSpec("echo-test", "test_registry:EchoProvider", needs_key=False, key_env=None, base_url_env=None,
                    sdk_module=None, tools=False, images=False, pdfs=False, schemas=False, remote=True,
                    priced=False, default_model="words")


class EchoProvider:
    """A provider of a type streamchat's code has never heard of: it says the prompt back."""

    params: frozenset[str] = frozenset()
    accepts: frozenset[str] = frozenset()

    def __init__(self, config: object, *, timeout: float = 60.0) -> None:
        self.name, self.base_url = getattr(config, "name", "echo-test"), None

    def prepare(self, model: str) -> None:
        pass

    def stream(self, request: ChatRequest) -> EventStream:
        words = request.messages[-1].content.split()
        for i, word in enumerate(words):
            yield TextDelta(word if i == 0 else f" {word}")
        yield Usage(input_tokens=len(words), output_tokens=len(words))
        yield Done("stop")

    def list_models(self) -> list[str]:
        return ["words"]

    def map_error(self, exc: Exception, *, model: str, started: bool) -> Exception:
        return exc


@pytest.fixture
def echo_type() -> Iterator[ProviderSpec]:
    register(ECHO)
    yield ECHO
    registry._SPECS.pop(ECHO.type, None)


def test_builtin_types_are_registered_and_their_adapters_agree():
    assert [s.type for s in all_specs()][:3] == ["openai", "anthropic", "local"]
    builtin = [s for s in all_specs() if s.adapter.startswith("streamchat.")]  # a plugin an earlier test loaded has its own
    assert [s.type for s in builtin] == ["openai", "anthropic", "local", "gemini"]
    for spec in builtin:
        module, _, cls = spec.adapter.partition(":")
        adapter = getattr(importlib.import_module(module), cls)  # the module only: no SDK, no client
        assert adapter.accepts == spec.accepts, spec.type
        assert importlib.import_module(module).OPTIONS, spec.type
    assert spec_for("openai").accepts == frozenset({"image", "pdf"}) and spec_for("local").accepts == frozenset()
    assert spec_for("anthropic").prefill and not spec_for("openai").prefill


def test_registry_is_cheap_to_import():
    """Config, completion and --help read the registry: it must load no adapter and no SDK."""
    code = ("import sys, streamchat.config, streamchat.providers.registry as r; r.all_specs();"
            "loaded = [m for m in ('openai', 'anthropic', 'google.genai', 'llama_cpp', 'streamchat.providers.base',"
            " 'streamchat.providers.openai', 'streamchat.providers._sdk') if m in sys.modules]; print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_register_is_idempotent_and_refuses_a_second_spec(echo_type):
    register(ECHO)  # the same spec again: harmless
    with pytest.raises(ValueError, match="already registered"):
        register(ProviderSpec("openai", "x:Y", needs_key=False, key_env=None, base_url_env=None, sdk_module=None,
                              tools=False, images=False, pdfs=False, schemas=False, remote=False, priced=False))
    assert spec_for("openai").adapter == "streamchat.providers.openai:OpenAIProvider"


def test_unknown_type_names_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        spec_for("nonesuch")
    assert "nonesuch" in str(caught.value) and "openai, anthropic, local" in str(caught.value)
    with pytest.raises(ConfigError, match=r"\[providers.x\] type 'nonesuch' is not known — use one of: openai"):
        parse_settings({"providers": {"x": {"type": "nonesuch"}}})


def test_unknown_type_is_asked_of_the_plugins(monkeypatch):
    asked: list[str] = []

    def load_provider(provider_type: str) -> None:
        asked.append(provider_type)
        if provider_type == ECHO.type:
            register(ECHO)

    plugins = types.ModuleType("streamchat.plugins")
    plugins.load_provider = load_provider  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "streamchat.plugins", plugins)
    monkeypatch.setattr(streamchat, "plugins", plugins, raising=False)
    try:
        assert spec_for(ECHO.type) is ECHO
        with pytest.raises(ConfigError):
            spec_for("nonesuch")
        assert asked == [ECHO.type, "nonesuch"]
        spec_for(ECHO.type)
        assert asked == [ECHO.type, "nonesuch"]  # registered now: not asked again
    finally:
        registry._SPECS.pop(ECHO.type, None)


def test_a_plugin_without_load_provider_is_tolerated(monkeypatch):
    monkeypatch.setitem(sys.modules, "streamchat.plugins", types.ModuleType("streamchat.plugins"))
    monkeypatch.setattr(streamchat, "plugins", sys.modules["streamchat.plugins"], raising=False)
    with pytest.raises(ConfigError, match="unknown provider type"):
        spec_for("nonesuch")


def test_capabilities_are_read_from_the_spec_not_the_type_name(echo_type, monkeypatch):
    """A new type: configured, resolved (`echo-test:words` with no config), free, refused where it
    cannot follow, offered by serve as a remote model, and `keys` leaves it alone."""
    settings = parse_settings({"providers": {"mine": {"type": "echo-test"}}})
    cfg, model = settings.resolve("echo-test:words")
    assert (cfg.name, cfg.type, model) == ("echo-test", "echo-test", "words")
    assert settings.resolve("mine:other")[0].type == "echo-test"
    assert settings.providers["mine"].require_key() == "not-needed"
    assert settings.providers["mine"].base_url_env is None
    assert turn_cost(settings, cfg, model, Stats(0, 1, 5, input_tokens=3)) == 0.0
    assert context_window(settings, cfg, model) is None

    session = ChatSession(settings, Overrides(model="echo-test:words"))
    assert session.target.config is cfg or session.target.config == cfg
    result = session.ask("hello plugin world", NullSink())
    assert result.text == "hello plugin world" and result.stats.cost_usd == 0.0

    refused = ChatSession(settings, Overrides(model="mine:words", schema=ResponseSchema({"type": "object"})))
    with pytest.raises(BadRequestError, match="cannot answer in a JSON schema"):
        refused.ask("x", NullSink())
    tools = ChatSession(settings, Overrides(model="mine:words", tools=(ToolSpec("f", "", {"type": "object"}),)))
    with pytest.raises(BadRequestError, match="cannot call tools"):
        tools.ask("x", NullSink())
    reasoning = ChatSession(settings, Overrides(model="mine:words", reasoning="high"))
    assert reasoning.params() == ()  # echo-test reasons (the spec says so); local does not:
    with pytest.raises(UsageError, match="cannot reason"):
        ChatSession(settings, Overrides(model="local:smollm2", reasoning="high"), warm=True).params()

    policy = ModelPolicy(settings, "mine:words", patterns=("echo-test:*",))
    assert policy.choose("echo-test:other") == "echo-test:other"  # remote: an --allow-model pattern offers it
    with pytest.raises(Refused):
        ModelPolicy(settings, "mine:words").choose("echo-test:other")

    started: list[str] = []
    monkeypatch.setattr("streamchat.background.start", lambda fn, *a, name: started.append(a[0]))
    preimport(settings, "mine:words")  # no SDK to import
    for name in ("http_proxy", "https_proxy", "all_proxy"):  # a proxy would send anthropic through its SDK
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("STREAMCHAT_TRANSPORT", raising=False)
    preimport(settings, "anthropic:claude-x")
    assert started == []  # the lean path sends it: no SDK to import
    monkeypatch.setenv("STREAMCHAT_TRANSPORT", "sdk")
    preimport(settings, "anthropic:claude-x")
    assert started == ["anthropic"]  # the module the spec names (sdk_module), not one named after the type
    preimport(settings, "gemini:gemini-2.5-flash")
    assert started == ["anthropic", "google.genai"]


def test_keys_and_prices_follow_the_spec(monkeypatch, tmp_path):
    settings = parse_settings({"providers": {"work": {"type": "anthropic"}}})
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no keys.json
    with pytest.raises(AuthError, match="no API key for provider 'anthropic'.*ANTHROPIC_API_KEY"):
        settings.providers["anthropic"].require_key()
    assert settings.providers["anthropic"].key_envs() == ("ANTHROPIC_API_KEY",)
    assert settings.providers["work"].key_envs() == ()  # a provider of its own: only the variable it names
    assert settings.providers["work"].base_url_env == "ANTHROPIC_BASE_URL"
    priced = turn_cost(settings, settings.providers["anthropic"], "claude-sonnet-4-5",
                       Stats(0, 1, 1_000_000, input_tokens=1_000_000))
    assert priced is not None and priced > 1  # $3 in + $15 out per million
    ollama = settings.providers["ollama"]  # type openai, another server: its prices are not OpenAI's
    assert turn_cost(settings, ollama, "gpt-4o", Stats(0, 1, 10, input_tokens=10)) is None
