"""The Gemini provider through the real google-genai SDK against the fake server's Gemini dialect:
streaming with the system prompt, thoughts, images and PDFs inline, tools (function declarations,
calls, responses), JSON-schema answers, usage and cost, errors as Google words them, the connection
closed with the stream; and once through the CLI (`-m gemini:gemini-2.5-flash`)."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import base_env
from fakeserver import Script
from test_function_tools import FNS, write
from test_tools import quiet_ui
from turnhelp import assert_fails_alike

from streamchat.cancel import CancelToken
from streamchat.config import BUILTIN_PROVIDERS, Settings, parse_settings
from streamchat.environment import Environment
from streamchat.errors import (
    AuthError,
    ContextOverflowError,
    IncompleteStreamError,
    ModelNotFoundError,
    ProtocolError,
    RateLimitError,
    ServerError,
)
from streamchat.events import Attachment, Message, Outcome, TextDelta, ToolCall, TurnResult
from streamchat.exit_status import ExitStatus
from streamchat.providers.base import ChatRequest, get_provider
from streamchat.schema_request import ResponseSchema
from streamchat.service import ChatSession, Overrides
from streamchat.sinks import NullSink
from streamchat.sinks.ndjson import NdjsonSink
from streamchat.tools import build_toolbox

KEY = "AIza-test-gemini-KEY123"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def settings_for(server, tmp_path: Path | None = None, **extra) -> Settings:
    return parse_settings({"retries": 0, "providers": {"gemini": {"base_url": server.url, "api_key": KEY}}, **extra},
                          tmp_path / "config.toml" if tmp_path else None)


def camel(value: Any) -> Any:
    """The request's JSON with every key in lowerCamelCase: the SDK sends some nested fields by their
    proto names (`mime_type`), which the API takes as it takes the camel-case ones."""
    if isinstance(value, list):
        return [camel(v) for v in value]
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()}
    return value


def ask(settings: Settings, prompt: str, *, attachments=(), **overrides) -> TurnResult:
    session = ChatSession(settings, Overrides(**{"model": "gemini", **overrides}))
    return session.ask(prompt, NullSink(), attachments=tuple(attachments))


def test_streams_the_answer_with_the_system_prompt_options_usage_and_cost(server):
    server.script("gemini-2.5-flash", Script(chunks=["Hel", "lo", " there"], usage=(12, 3)))
    result = ask(settings_for(server), "hi", system="be brief", temperature=0.3, max_tokens=50,
                 params=(("top_k", 5), ("stop", ["END"])))
    assert result.ok, result.message
    assert result.text == "Hello there" and result.finish_reason == "stop"
    assert (result.stats.input_tokens, result.stats.tokens) == (12, 3)
    from genai_prices import Usage, calc_price

    price = calc_price(Usage(input_tokens=12, output_tokens=3), model_ref="gemini-2.5-flash", provider_id="google")
    assert result.stats.cost_usd == pytest.approx(float(price.total_price)) and result.stats.cost_usd > 0
    sent = server.requests[-1]
    assert sent.path.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"]["parts"] == [{"text": "be brief"}]
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    config = sent.body["generationConfig"]
    assert (config["temperature"], config["maxOutputTokens"], config["topK"], config["stopSequences"]) == \
        (0.3, 50, 5, ["END"])
    assert "tools" not in sent.body


def test_thoughts_stream_as_reasoning_and_count_as_output(server):
    server.script("gemini-2.5-flash", Script(chunks=["42"], reasoning=["Let me ", "think."], usage=(5, 1)))
    result = ask(settings_for(server), "q", reasoning="high")
    assert (result.text, result.reasoning) == ("42", "Let me think.")
    assert result.stats.tokens == 1 + 2  # the answer's token and the thoughts' (billed as output)
    thinking = camel(server.requests[-1].body["generationConfig"]["thinkingConfig"])
    assert thinking == {"thinkingBudget": 24576, "includeThoughts": True}


def test_images_and_pdfs_go_inline_before_the_text(server):
    attachments = [Attachment("dot.png", "image/png", PNG), Attachment("doc.pdf", "application/pdf", PDF)]
    result = ask(settings_for(server), "what is this?", attachments=attachments, model="gemini:echo")
    assert result.text == "echo: what is this?"
    parts = camel(server.requests[-1].body["contents"][-1]["parts"])
    inline = [(p["inlineData"]["mimeType"], base64.urlsafe_b64decode(p["inlineData"]["data"])) for p in parts[:2]]
    assert inline == [("image/png", PNG), ("application/pdf", PDF)] and parts[2] == {"text": "what is this?"}


def test_the_model_calls_a_function_and_answers_from_its_result(server, tmp_path):
    write(tmp_path, "fns.py", FNS)
    server.script("tooly", Script(chunks=["Adding."], tool_calls=[("c1", "add", {"a": 2, "b": 3})]))
    settings = settings_for(server, tmp_path, functions=["fns.py"])
    ui, err = quiet_ui()
    box = build_toolbox(settings, [], ["fns:add"], ui, interactive=False)
    session = ChatSession(settings, Overrides(model="gemini:tooly"), ui=ui, toolbox=box)
    result = session.ask("what is 2 + 3?", NdjsonSink(Environment(stdout=io.StringIO(), environ={})))
    assert result.ok, result.message
    assert result.text.endswith("got: 5") and (tmp_path / "ran.txt").read_text() == "2+3\n"
    assert [s.content for s in result.steps if s.role == "tool"] == ["5"]
    first, second = server.requests[0].body, server.requests[1].body
    declared = camel(first["tools"][0]["functionDeclarations"])
    assert [d["name"] for d in declared] == ["add", "describe", "fails"]
    assert declared[0]["description"] == "Add two integers."
    assert declared[0]["parametersJsonSchema"]["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    call, answer = camel(second["contents"][-2:])
    assert call["role"] == "model" and call["parts"][-1] == {"functionCall": {"name": "add", "args": {"a": 2, "b": 3}}}
    assert answer == {"role": "user", "parts": [{"functionResponse": {"name": "add", "response": {"result": "5"}}}]}
    assert "→ fns:add(a=2, b=3)" in err.getvalue()


def test_calls_stream_as_our_tool_events(server):
    server.script("tooly", Script(chunks=[], tool_calls=[("c1", "add", {"a": 1}), ("c2", "mul", '{"x": [1, 2]}')]))
    provider = get_provider(settings_for(server).providers["gemini"])
    events = list(provider.stream(ChatRequest("tooly", (Message("user", "go"),))))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, c.parsed(), c.index) for c in calls] == [("add", {"a": 1}, 0), ("mul", {"x": [1, 2]}, 1)]
    assert len({c.id for c in calls}) == 2 and events[-1].finish_reason == "tool_calls"


def test_a_schema_asks_for_json_and_gets_it(server):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "people": {"type": "integer"}},
              "required": ["city", "people"]}
    result = ask(settings_for(server), "biggest city?", model="gemini:echo", schema=ResponseSchema(schema))
    answer = json.loads(result.text)
    assert set(answer) == {"city", "people"} and isinstance(answer["people"], int)
    config = server.requests[-1].body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == schema


@pytest.mark.parametrize(("script", "error", "words"), [
    (None, ModelNotFoundError, "does not know model 'nope'"),
    (Script(status=429, error_message="Quota exceeded", headers={"Retry-After": "7"}), RateLimitError, "Quota exceeded"),
    (Script(status=400, error_message="API key not valid. Please pass a valid API key."), Exception, "API key not valid"),
    (Script(context_limit=3), ContextOverflowError, "too long"),
    (Script(status=503, error_message="The model is overloaded."), ServerError, "overloaded"),
])
def test_errors_as_google_words_them(server, script, error, words):
    if script is not None:
        server.script("nope", script)
    result = ask(settings_for(server), "a question long enough to overflow a tiny window", model="gemini:nope")
    assert result.outcome is Outcome.FAILED and isinstance(result.error, error), result.error
    assert words in str(result.error) and KEY not in str(result.error)
    if isinstance(result.error, RateLimitError):
        assert result.error.retry_after == 7


@pytest.mark.parametrize(("fault", "error"), [
    ("error_event", ServerError), ("no_done", IncompleteStreamError), ("malformed", ProtocolError)])
def test_a_stream_that_fails_midway_keeps_the_partial_answer(server, fault, error):
    server.script("gemini-2.5-flash", Script(chunks=["one ", "two ", "three"], fault=fault, fault_after=2))
    result = ask(settings_for(server), "count")
    assert result.outcome is Outcome.FAILED and isinstance(result.error, error), result.error
    assert result.text == "one two "


def test_closing_the_stream_closes_the_connection_and_a_cancel_cuts_a_stall(server):
    gate = threading.Event()
    server.script("slow", Script(chunks=["first", "second"], gate=gate))
    provider = get_provider(settings_for(server).providers["gemini"])
    stream = provider.stream(ChatRequest("slow", (Message("user", "go"),)))
    assert next(e for e in stream if isinstance(e, TextDelta)).text == "first"
    stream.close()
    assert server.wait_disconnect(5)
    gate.set()

    server.reset()
    server.script("stall", Script(chunks=["first", "never"], fault="stall", fault_after=1))
    cancel = CancelToken()
    threading.Timer(0.5, cancel.cancel).start()
    started = time.monotonic()
    session = ChatSession(settings_for(server), Overrides(model="gemini:stall", timeout=30))
    result = session.ask("go", NullSink(), cancel=cancel)
    assert result.outcome is Outcome.CANCELLED and result.text == "first"
    assert time.monotonic() - started < 5 and server.wait_disconnect(5)


def test_models_are_listed_and_keys_read_as_the_sdk_reads_them(server, monkeypatch):
    provider = get_provider(settings_for(server).providers["gemini"])
    server.script("gemini-2.5-pro", Script())
    assert provider.list_models() == ["echo", "gemini-2.5-pro"]
    builtin = BUILTIN_PROVIDERS["gemini"]
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key")
    assert builtin.key_source() == ("gemini-key", "env GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")  # both set: the SDK takes GOOGLE_API_KEY
    assert builtin.key_source() == ("google-key", "env GOOGLE_API_KEY")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://gw.example/")
    assert builtin.effective_base_url() == ("http://gw.example/", "GOOGLE_GEMINI_BASE_URL")


@pytest.mark.e2e
def test_the_cli_streams_gemini_and_says_what_is_missing(invoke, home, server):
    server.script("gemini-2.5-flash", Script(chunks=["Bonjour", " le", " monde"], usage=(9, 3)))
    env = base_env(home, server, GEMINI_API_KEY=KEY, GOOGLE_GEMINI_BASE_URL=server.url)
    r = invoke("-m", "gemini:gemini-2.5-flash", "--stats", "say hello", env=env)
    assert r.code == 0, r.stderr
    assert r.out == "Bonjour le monde\n" and "3 tokens" in r.stderr and "cost $0.0000" in r.stderr
    assert KEY not in r.stderr
    listed = invoke("keys", "list", env=env)
    assert "gemini\tenv GEMINI_API_KEY\t" in listed.out and KEY not in listed.out
    r = invoke("-m", "gemini", "hi", env=base_env(home, server, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring"))
    assert r.code == ExitStatus.CONFIG and r.stderr.count("\n") == 1, r.stderr
    assert "no API key for provider 'gemini'" in r.stderr and "GEMINI_API_KEY" in r.stderr
    assert AuthError.exit_code == ExitStatus.CONFIG


# -- asyncio (serve): `astream` through the SDK's client.aio -------------------------------------
ASYNC_FAULTS = {
    "429": Script(status=429, error_message="Quota exceeded", headers={"Retry-After": "7"}),
    "503": Script(status=503, error_message="The model is overloaded."),
    "error event": Script(chunks=["one ", "two ", "three"], fault="error_event", fault_after=2),
    "no finish": Script(chunks=["one ", "two ", "three"], fault="no_done", fault_after=2),
    "malformed": Script(chunks=["one ", "two ", "three"], fault="malformed", fault_after=2),
}


def _gemini(server, timeout: float = 60.0):
    from streamchat.providers.gemini import GeminiProvider

    return GeminiProvider(settings_for(server).providers["gemini"], timeout=timeout)


def test_astream_sends_what_stream_sends_and_reads_the_same_events(server):
    import asyncio

    from streamchat.events import ToolSpec
    from streamchat.session import run_turn_async

    provider = _gemini(server)
    assert hasattr(provider, "astream")  # serve streams it on its loop, not on a thread
    server.script("gemini-2.5-flash", Script(chunks=["Hel", "lo"], usage=(12, 3)))
    tool = ToolSpec("lookup", "Look a word up", {"type": "object", "properties": {"word": {"type": "string"}}})
    request = ChatRequest("gemini-2.5-flash", (Message("system", "be brief"), Message("user", "hi")),
                          temperature=0.3, params=(("top_k", 5),), tools=(tool,))
    blocking = list(provider.stream(request))
    sent = server.requests[-1]

    async def turn() -> list[object]:
        return [item async for item in run_turn_async(provider, request)]

    items = asyncio.run(turn())
    assert items[:-1] == blocking and items[-1].text == "Hello" and items[-1].stats.tokens == 3
    assert (server.requests[-1].path, server.requests[-1].body) == (sent.path, sent.body)
    assert server.requests[-1].headers["x-goog-api-key"] == KEY


@pytest.mark.parametrize("fault", list(ASYNC_FAULTS))
def test_astream_fails_as_the_blocking_path_does(server, fault):
    server.script("m", ASYNC_FAULTS[fault])
    assert_fails_alike(_gemini(server), ChatRequest("m", (Message("user", "q"),)))


def test_closing_astream_or_cancelling_its_task_closes_the_connection(server):
    import asyncio

    gate = threading.Event()
    server.script("slow", Script(chunks=["first", "second"], gate=gate))
    provider = _gemini(server)
    request = ChatRequest("slow", (Message("user", "go"),))

    async def close_early() -> str:
        events = provider.astream(request)
        first = await anext(e async for e in events if isinstance(e, TextDelta))
        await events.aclose()
        return first.text

    async def cancel_a_stall() -> float:
        async def read() -> None:
            async for _ in provider.astream(ChatRequest("stall", (Message("user", "go"),))):
                pass

        task = asyncio.create_task(read())
        await asyncio.sleep(0.5)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    async def both() -> tuple[str, float]:
        first = await close_early()
        assert await asyncio.to_thread(server.wait_disconnect, 5)
        gate.set()
        server.reset()
        server.script("stall", Script(chunks=["first", "never"], fault="stall", fault_after=1))
        took = await cancel_a_stall()
        await provider.aclose()
        return first, took

    first, took = asyncio.run(both())
    assert first == "first" and took < 2 and server.wait_disconnect(5)


def test_serves_session_streams_gemini_on_its_loop(server):
    """ChatSession.ask_async, the path serve's bridge takes when the adapter can stream on asyncio."""
    import asyncio

    server.script("gemini-2.5-flash", Script(chunks=["on ", "the loop"], usage=(5, 2)))
    session = ChatSession(settings_for(server), Overrides(model="gemini"))
    assert session.streams_async

    async def turn() -> list[object]:
        return [item async for item in session.ask_async("hi")]

    items = asyncio.run(turn())
    result = items[-1]
    assert isinstance(result, TurnResult) and result.ok and result.text == "on the loop"
    assert [e.text for e in items if isinstance(e, TextDelta)] == ["on ", "the loop"]
