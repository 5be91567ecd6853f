"""`streamchat models` lists what a server names: a name holding an escape sequence is not listed.

A compatible server's `/v1/models` (any base_url, OpenRouter, a proxy) named
`evil\\x1b]0;PWNED\\x07\\x1b[2J`: it reached the terminal as it was (a title set, the screen
cleared; OSC 52 would have written the clipboard) and the models cache, which every Tab press reads.
"""

from __future__ import annotations

import json

from streamchat.exit_status import ExitStatus

EVIL = "evil\x1b]0;PWNED\x07\x1b[2J"


def test_a_model_name_with_control_characters_is_not_listed_nor_cached(invoke, server, home):
    server.script(EVIL, chunks=["x"])
    server.script("fine-model", chunks=["x"])
    r = invoke("models", "openai")
    assert r.code == ExitStatus.OK, r.stderr
    assert "\x1b" not in r.out and "\x07" not in r.out
    assert "openai:fine-model" in r.out.splitlines()
    assert "1 model name holding control characters not listed" in r.stderr and "\x1b" not in r.stderr
    cached = json.loads((home / "data" / "streamchat" / "models-cache.json").read_text())
    assert "openai:fine-model" in cached and not any("\x1b" in name for name in cached)


def test_a_cached_name_with_control_characters_is_never_offered(home, monkeypatch):
    from streamchat.models_cache import load_models_cache, models_cache_path

    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    path = models_cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(["openai:fine", f"openai:{EVIL}"]))
    assert load_models_cache() == ["openai:fine"]
