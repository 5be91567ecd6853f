"""The embedded local model (llama.cpp + bundled SmolLM2), for real: no server, no key."""

from __future__ import annotations

import json
import time

import pexpect
import pytest
from conftest import STREAMCHAT, base_env

pytest.importorskip("llama_cpp", reason="the `local` extra is installed by .ci/run")


def test_default_model_answers_offline(run, home):
    env = base_env(home)  # no keys, no server, no config
    r = run("--max-tokens", "12", "Say hello.", env=env)
    assert r.code == 0, r.stderr
    assert r.out.strip()
    assert "llama" not in r.stderr.lower() and "gguf" not in r.stderr.lower()  # no llama.cpp log lines


def test_json_events_include_usage(run, home):
    r = run("-m", "local", "--json", "--max-tokens", "8", "Name a color.", env=base_env(home))
    assert r.code == 0, r.stderr
    events = [json.loads(line) for line in r.out.splitlines()]
    assert any(e["type"] == "text" and e["text"] for e in events)
    usage = [e for e in events if e["type"] == "usage"][-1]
    assert usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 8
    assert events[-1]["type"] == "done" and events[-1]["stats"]["tokens"] > 0


def test_context_overflow_is_a_clear_error(run, home):
    cfg = home / "small.toml"
    cfg.write_text("[providers.local]\nn_ctx = 128\n")
    r = run("-m", "local:smollm2", "--config", str(cfg), "word " * 400, env=base_env(home))
    assert r.code == 4, r.stderr
    assert "too long" in r.stderr and "n_ctx" in r.stderr and "Traceback" not in r.stderr


def test_missing_gguf_path(run, home):
    r = run("-m", f"local:{home}/nope.gguf", "hi", env=base_env(home))
    assert r.code == 3
    assert "model file not found" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_gguf(run, home):
    bad = home / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 1000)
    r = run("-m", f"local:{bad}", "hi", env=base_env(home))
    assert r.code == 3, r.stderr
    assert "not a valid GGUF" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_extra_names_the_install_command(monkeypatch):
    import importlib.util

    from streamchat.config import BUILTIN_PROVIDERS
    from streamchat.errors import ConfigError
    from streamchat.providers.local import LocalProvider

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(ConfigError) as info:
        LocalProvider(BUILTIN_PROVIDERS["local"])
    assert "pip install 'streamchat[local]'" in str(info.value) and "STREAMCHAT_MODEL" in str(info.value)


def test_repl_ctrl_c_stops_local_generation(home):
    # One thread: the suite runs tests in parallel, and llama.cpp workers competing for
    # every core stall for hundreds of ms (see providers/local.py default_threads).
    cfg = home / "one-thread.toml"
    cfg.write_text("[providers.local]\nn_threads = 1\n")
    env = base_env(home, PROMPT_TOOLKIT_NO_CPR="1", STREAMCHAT_CONFIG=str(cfg))
    child = pexpect.spawn(STREAMCHAT, ["-m", "local", "--max-tokens", "3000", "--temperature", "1.0"], env=env,
                          encoding="utf-8", dimensions=(30, 100), timeout=30)
    child.logfile_read = open(home / "pty.log", "w")  # noqa: SIM115 — closed with the child
    try:
        child.expect_exact("›")
        child.sendline("Write a very long story about a dragon and a knight, with many chapters.")
        try:
            child.expect_exact("\x1b[?2026h")  # the renderer's first paint: the answer has started
        except pexpect.TIMEOUT:  # seen once under CI load: show what the terminal got
            child.logfile_read.flush()
            raise AssertionError(repr((home / "pty.log").read_text()[-3000:])) from None
        time.sleep(0.3)
        sent = time.monotonic()
        child.sendintr()
        child.expect_exact("[interrupted]", timeout=5)
        child.expect_exact("›", timeout=5)
        assert time.monotonic() - sent < 1.0
        child.sendline("/stats")
        child.expect_exact("conversation: 1 turn,")
        child.expect_exact("›")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_extra_buffer_types_are_off_only_for_the_load():
    """On an AMX CPU the model loads without llama.cpp's extra buffer types (they segfault a
    batched decode there); the wrapper is undone afterwards and leaves other loads alone."""
    from llama_cpp import llama_cpp as lib

    from streamchat.providers.local import _model_defaults

    original = lib.llama_model_default_params
    with _model_defaults(use_extra_bufts=False):
        assert lib.llama_model_default_params().use_extra_bufts is False
    assert lib.llama_model_default_params is original
    with _model_defaults(use_extra_bufts=True):
        assert lib.llama_model_default_params().use_extra_bufts is True
