"""The Python API (`streamchat.get_model(...).prompt(...)`): the real openai and anthropic SDKs against
the fake streaming server, in-process, with the environment a CLI run would have."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import base_env
from fakeserver import FakeLLMServer

import streamchat

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
                    "c0f01f0005000201a3f3e2d90000000049454e44ae426082")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, home: Path, server: FakeLLMServer) -> FakeLLMServer:
    """This process's environment as `run` gives the CLI's (keys, base URLs, STREAMCHAT_DB in tmp),
    with a config holding an alias and a price."""
    env = base_env(home, server)
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    Path(env["STREAMCHAT_CONFIG"]).write_text(
        f'[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\napi_key = "k"\n'
        '[aliases]\nfast = "compat:priced"\n'
        '[prices."compat:priced"]\ninput = 1.0\noutput = 2.0\n')
    Path(env["STREAMCHAT_CONFIG"]).chmod(0o600)  # it holds a key
    return server


def sent(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of a request's messages, either wire format (Anthropic's system is apart)."""
    out = [("system", body["system"] if isinstance(body["system"], str) else body["system"][0]["text"])] \
        if body.get("system") else []
    for m in body["messages"]:
        content = m["content"]
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        out.append((m["role"], text))
    return out


def test_sync_response_is_lazy_streams_chunks_and_reports_usage_and_cost(api):
    api.script("gpt-4o-mini", chunks=["Hel", "lo", "!"], usage=(10, 5))
    model = streamchat.get_model("openai:gpt-4o-mini")
    response = model.prompt("hi", system="be brief", options={"temperature": 0.5, "max_tokens": 20, "top_p": 0.9})
    assert api.requests == []  # nothing is sent until the response is read

    assert list(response) == ["Hel", "lo", "!"]
    assert response.text() == "Hello!"
    assert list(response) == ["Hel", "lo", "!"]  # read again: replayed, not asked again
    assert len(api.requests) == 1
    body = api.requests[0].body
    assert sent(body) == [("system", "be brief"), ("user", "hi")]
    assert (body["temperature"], body["top_p"]) == (0.5, 0.9)
    assert 20 in (body.get("max_tokens"), body.get("max_completion_tokens"))
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 5)
    assert response.cost_usd is not None and response.cost_usd > 0  # gpt-4o-mini is in the price database


def test_names_resolve_as_the_cli_does_and_prices_come_from_the_config(api):
    api.script("priced", usage=(10, 5))
    model = streamchat.get_model("fast")  # an alias from [aliases]
    assert model.name == "compat:priced"
    response = model.prompt("q")
    assert response.text() == "Hello, world!"
    assert response.cost_usd == pytest.approx((10 * 1.0 + 5 * 2.0) / 1_000_000)
    assert streamchat.get_model("compat:echo").prompt("q").cost_usd is None  # an unpriced model


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_conversation_sends_the_earlier_exchanges(api, provider):
    conversation = streamchat.get_model(f"{provider}:echo").conversation()
    first = conversation.prompt("a", system="S")
    second = conversation.prompt("b")
    assert second.text() == "echo: b"  # read first: the turn before it is sent before it
    assert first.text() == "echo: a"
    assert [sent(r.body) for r in api.requests] == [
        [("system", "S"), ("user", "a")],
        [("system", "S"), ("user", "a"), ("assistant", "echo: a"), ("user", "b")],
    ]


def test_async_streams_and_a_second_event_loop_works(api):
    api.script("kept", chunks=["one ", "two"], usage=(3, 2), keep_alive=True)  # pooled connection left open
    model = streamchat.get_async_model("anthropic:kept")

    async def ask() -> tuple[list[str], str, streamchat.Usage]:
        response = model.prompt("hi")
        with pytest.raises(streamchat.UsageError, match="not finished"):
            response.usage  # noqa: B018 — not known before the answer ends
        chunks = [chunk async for chunk in response]
        return chunks, await response.text(), (await response).usage

    assert asyncio.run(ask()) == (["one ", "two"], "one two", streamchat.Usage(3, 2))
    assert asyncio.run(ask())[1] == "one two"  # a new loop: nothing bound to the first one


def test_async_conversation_keeps_history(api):
    async def chat() -> list[str]:
        conversation = streamchat.get_async_model("openai:echo").conversation()
        return [await conversation.prompt("a").text(), await conversation.prompt("b").text()]

    assert asyncio.run(chat()) == ["echo: a", "echo: b"]
    assert sent(api.requests[-1].body) == [("user", "a"), ("assistant", "echo: a"), ("user", "b")]


def test_cancelling_the_reading_task_closes_the_stream(api):
    api.script("slow", chunks=["first", "never"], gate=threading.Event())  # holds after the first chunk

    async def read_then_cancel() -> str:
        response = streamchat.get_async_model("openai:slow").prompt("q")
        first = await response.__aiter__().__anext__()
        task = asyncio.ensure_future(response.text())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return first

    assert asyncio.run(read_then_cancel()) == "first"
    assert api.wait_disconnect(5), "the upstream stream was not closed"


def test_the_log_is_written_only_when_asked(api, invoke):
    db = Path(os.environ["STREAMCHAT_DB"])
    assert streamchat.get_model("openai:echo").prompt("unlogged").text() == "echo: unlogged"
    assert not db.exists()

    conversation = streamchat.get_model("openai:echo", log=True).conversation()
    conversation.prompt("q1").text()
    conversation.prompt("q2").text()
    streamchat.get_model("openai:echo").prompt("one more", log=True).text()

    listed = invoke("history").out.splitlines()  # id, when, model, turns, title
    assert [(row.split("\t")[3], row.split("\t")[4]) for row in listed] == [("1", "one more"), ("2", "q1")]


def test_a_log_that_cannot_be_written_is_an_error_when_asked_for(api, monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("STREAMCHAT_DB", str(tmp_path / "a-file" / "log.db"))
    with pytest.raises(streamchat.UsageError, match="log=True, but the conversation log .* is unusable"):
        streamchat.get_model("openai:echo", log=True).prompt("q").text()
    assert api.requests == []  # nothing was asked that could not be saved
    assert streamchat.get_model("openai:echo").prompt("q").text() == "echo: q"  # without the log: fine


def test_errors_raise_typed_and_print_nothing(api, capfd):
    with pytest.raises(streamchat.UsageError, match="unknown model"):
        streamchat.get_model("nosuch")
    model = streamchat.get_model("openai:echo")
    with pytest.raises(streamchat.UsageError, match="temperature"):
        model.prompt("q", options={"temperature": 5})
    with pytest.raises(streamchat.UsageError, match="unknown option"):
        model.prompt("q", options={"temprature": 1})
    with pytest.raises(streamchat.UsageError, match="seed"):  # Anthropic's API has no seed
        streamchat.get_model("anthropic:echo").prompt("q", options={"seed": 1}).text()
    with pytest.raises(streamchat.BadRequestError, match="'missing' not found"):
        streamchat.get_model("openai:missing").prompt("q").text()

    api.script("cut", chunks=["a", "b", "c"], fault="drop", fault_after=2)
    response = streamchat.get_model("openai:cut").prompt("q")
    chunks = []
    with pytest.raises(streamchat.Error):
        for chunk in response:
            chunks.append(chunk)
    assert chunks == ["a", "b"]  # the partial answer was streamed before the fault was raised
    assert capfd.readouterr() == ("", "")


def test_attachments_are_sent_as_the_cli_sends_them(api, tmp_path):
    picture = tmp_path / "dot.png"
    picture.write_bytes(PNG)
    streamchat.get_model("openai:echo").prompt("what is it?", attachments=[picture]).text()
    parts = api.requests[-1].body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    with pytest.raises(streamchat.UsageError, match="no such file"):
        streamchat.get_model("openai:echo").prompt("q", attachments=[tmp_path / "gone.png"])


def test_the_api_imports_no_terminal_code_nor_the_sdk(home, server):
    code = """
import json, sys
import streamchat
model = streamchat.get_model("openai:echo")
def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in ("rich", "prompt_toolkit", "typer", "click", "openai")
                  or m.startswith(("streamchat.ui", "streamchat.cli", "streamchat.repl", "streamchat.sinks",
                                   "streamchat.render")))
before = loaded()
text = model.prompt("hi").text()
print(json.dumps([before, text, loaded()]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base_env(home, server),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    before, text, after = json.loads(proc.stdout)
    assert (before, text) == ([], "echo: hi")
    assert after == []  # the request goes out on the lean transport (providers/_http.py): no SDK either


def test_a_script_that_stops_reading_ends_without_waiting_for_the_answer(home, server):
    server.script("held", chunks=["first", "never"], gate=threading.Event())  # the rest never comes
    code = "import streamchat\nfor chunk in streamchat.get_model('openai:held').prompt('q'):\n    print(chunk)\n    break\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base_env(home, server),
                          timeout=30)  # the answer's read timeout is 60 s: waiting for it would fail here
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "first\n", "")


def test_ctrl_c_while_waiting_cancels_the_turn_and_keeps_the_partial_answer(home, server):
    server.script("held", chunks=["first", "never"], gate=threading.Event())
    code = """
import os, signal, threading, streamchat
response = streamchat.get_model("openai:held").prompt("q")
chunks = iter(response)
print(next(chunks), flush=True)
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    next(chunks)
except KeyboardInterrupt:
    print("interrupted", flush=True)
print(response.text())  # the turn ended at the Ctrl-C: not after the 60 s read timeout
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base_env(home, server),
                          timeout=30)
    assert (proc.stdout, proc.stderr) == ("first\ninterrupted\nfirst\n", "")
    assert server.wait_disconnect(5)


def test_the_public_names():
    assert {"get_model", "get_async_model", "Model", "AsyncModel", "Response", "AsyncResponse", "Conversation",
            "Error", "Usage"} <= set(streamchat.__all__)
    assert all(getattr(streamchat, name) is not None for name in streamchat.__all__)
    assert issubclass(streamchat.AuthError, streamchat.Error)


def test_any_provider_option_through_the_api(api):
    """options= takes every option a provider's table has (as -o), checked against the model's provider."""
    streamchat.get_model("anthropic:echo").prompt("q", options={"top_k": 5, "stop": ["END"]}).text()
    body = api.requests[-1].body
    assert body["top_k"] == 5 and body["stop_sequences"] == ["END"]
    with pytest.raises(streamchat.UsageError, match="top_k"):  # OpenAI's API has no top_k
        streamchat.get_model("openai:echo").prompt("q", options={"top_k": 5}).text()
    with pytest.raises(streamchat.UsageError, match="top_k must be a whole number"):
        streamchat.get_model("anthropic:echo").prompt("q", options={"top_k": "5"}).text()
