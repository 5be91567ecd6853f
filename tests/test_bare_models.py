"""`-m NAME` without a provider (#28.14): the one provider that offers it, the default provider's
catalog, or an error that names the `provider:model` to type."""

from __future__ import annotations

import json

import pytest
from fakeserver import Script

from streamchat.config import Settings, parse_settings
from streamchat.errors import UsageError


@pytest.fixture(autouse=True)
def _own_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("STREAMCHAT_MODEL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def test_a_name_one_provider_offers_resolves_to_it():
    s = parse_settings({"providers": {"mine": {"type": "openai", "base_url": "http://h/v1", "models": ["m9"]}}})
    assert s.resolve("m9") == (s.providers["mine"], "m9")
    assert s.resolve("gpt-4o-mini") == (s.providers["openai"], "gpt-4o-mini")  # openai's default model
    assert s.resolve("llama3.2") == (s.providers["ollama"], "llama3.2")


def test_a_name_that_streamchat_models_found_resolves(tmp_path):
    (tmp_path / "data" / "streamchat").mkdir(parents=True)
    (tmp_path / "data" / "streamchat" / "models-cache.json").write_text(json.dumps(["ollama:qwen3:8b"]))
    s = Settings()
    assert s.resolve("qwen3:8b") == (s.providers["ollama"], "qwen3:8b")


def test_the_default_providers_catalog_decides_a_name_nobody_lists():
    s = parse_settings({"default_model": "openai:gpt-4o-mini"})
    assert s.resolve("gpt-4o") == (s.providers["openai"], "gpt-4o")


def test_an_unknown_or_shared_name_says_what_to_type():
    with pytest.raises(UsageError, match=r"unknown model 'gpt-4o' — did you mean -m openai:gpt-4o\?"):
        Settings().resolve("gpt-4o")  # the default provider is local: no catalog of its own
    s = parse_settings({"providers": {"a": {"type": "openai", "base_url": "http://a/v1", "models": ["m"]},
                                      "b": {"type": "openai", "base_url": "http://b/v1", "models": ["m"]}}})
    with pytest.raises(UsageError, match="'m' is offered by more than one provider — say which: -m a:m or -m b:m"):
        s.resolve("m")
    with pytest.raises(UsageError, match="use PROVIDER:MODEL"):
        s.resolve("no-such-model-anywhere")


def test_a_bare_model_name_on_the_command_line(invoke, server):
    server.script("gpt-4o-mini", Script(chunks=["hi"]))
    assert invoke("-m", "gpt-4o-mini", "q").code == 0
    assert server.requests[-1].body["model"] == "gpt-4o-mini"
    r = invoke("-m", "gpt-4o", "q")
    assert r.code == 2 and "did you mean -m openai:gpt-4o?" in r.stderr and len(server.requests) == 1


@pytest.mark.slow
def test_names_nobody_knows_are_not_remembered_without_bound():
    """serve resolves whatever name a client sends; the memo of misses stays bounded."""
    from streamchat import cost

    for i in range(cost.UNKNOWN_CAP + 50):
        with pytest.raises(UsageError):
            Settings().resolve(f"no-such-model-{i}")
    assert len(cost._UNKNOWN) <= cost.UNKNOWN_CAP
