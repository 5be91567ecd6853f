"""Fast unit tests for the pure logic under the chat service: option precedence, retry policy,
status → error mapping, exit codes, the event vocabulary and context building for -c / /retry / /load."""

from __future__ import annotations

import re
import sqlite3

import pytest

from streamchat import errors
from streamchat.config import Settings, parse_settings
from streamchat.conversation import Conversation, Turn
from streamchat.errors import exit_code_for, from_status
from streamchat.events import Message, Outcome, Stats, TurnResult
from streamchat.records import result_dict
from streamchat.service import Overrides, merge
from streamchat.session import RetryPolicy
from streamchat.store import ConversationLog, connect

# -- option precedence ------------------------------------------------------------------------

def test_overrides_beat_config_which_beats_defaults():
    settings = parse_settings({"system": "cfg", "temperature": 0.3, "max_tokens": 50, "timeout": 9})
    eff = merge(settings, Overrides())
    assert (eff.system, eff.temperature, eff.max_tokens, eff.timeout) == ("cfg", 0.3, 50, 9)
    eff = merge(settings, Overrides(system="flag", temperature=0.0, max_tokens=7, timeout=1.5))
    assert (eff.system, eff.temperature, eff.max_tokens, eff.timeout) == ("flag", 0.0, 7, 1.5)
    eff = merge(Settings(), Overrides())
    assert (eff.system, eff.temperature, eff.max_tokens, eff.timeout) == (None, None, None, 60.0)


def test_no_retry_override_and_config_retries():
    settings = parse_settings({"retries": 5, "retry_max_wait": 3})
    assert merge(settings, Overrides()).retry == RetryPolicy(retries=5, max_wait=3)
    assert merge(settings, Overrides(retry=False)).retry.retries == 0


def test_model_precedence_flag_env_config_default(monkeypatch):
    settings = parse_settings({"default_model": "anthropic:cfg"})
    monkeypatch.delenv("STREAMCHAT_MODEL", raising=False)
    assert settings.model_spec(None) == "anthropic:cfg"
    assert Settings().model_spec(None) == "local:smollm2"
    monkeypatch.setenv("STREAMCHAT_MODEL", "openai:env")
    assert settings.model_spec(None) == "openai:env"
    assert settings.model_spec("openai:flag") == "openai:flag"


# -- retry policy -----------------------------------------------------------------------------

def test_retry_policy_only_retryable_and_within_budget():
    policy = RetryPolicy(retries=2, max_wait=10, base_delay=1)
    server = errors.ServerError("x")
    assert policy.delay(0, errors.AuthError("x"), 0) is None
    first = policy.delay(0, server, 0)
    assert first is not None and 0.5 <= first <= 1.5
    assert policy.delay(2, server, 0) is None  # attempts used up
    assert policy.delay(0, errors.RateLimitError("x", retry_after=4), 0) == 4
    assert policy.delay(0, errors.RateLimitError("x", retry_after=4), 7) is None  # past max_wait in all


# -- status → error --------------------------------------------------------------------------

@pytest.mark.parametrize("status,etype,overflow,cls,code", [
    (401, None, False, errors.AuthError, 3),
    (403, None, False, errors.AuthError, 3),
    (404, None, False, errors.ModelNotFoundError, 4),
    (400, "invalid_request_error", False, errors.BadRequestError, 4),
    (400, "context_length_exceeded", True, errors.ContextOverflowError, 4),
    (429, None, False, errors.RateLimitError, 5),
    (503, None, False, errors.ServerError, 5),
    (529, None, False, errors.OverloadedError, 5),
    (408, None, False, errors.NetworkError, 6),
])
def test_from_status(status, etype, overflow, cls, code):
    err = from_status(status, "detail", etype, model="m", provider="p", context_overflow=overflow)
    assert type(err) is cls and err.exit_code == code


def test_a_bad_temperature_is_not_called_a_long_prompt():
    err = from_status(400, "Invalid 'temperature': decimal above maximum value", "invalid_request_error",
                      model="m", provider="openai")
    assert not isinstance(err, errors.ContextOverflowError)
    assert "refused the request" in str(err)


def test_an_error_event_mid_stream_has_no_http_status():
    err = from_status(None, "Overloaded", "overloaded_error", model="m", provider="anthropic")
    assert isinstance(err, errors.OverloadedError) and "HTTP" not in str(err)


def test_transport_faults_map_by_type():
    import socket

    import httpx2

    def wrapped(cause: BaseException, kind: type[Exception] = httpx2.ConnectError) -> BaseException:
        try:
            raise kind("boom") from cause
        except kind as exc:
            return exc

    def line(exc: BaseException, started: bool = False) -> str:
        mapped = errors.map_transport(exc, provider="p", base_url="http://h", started=started)
        assert mapped is not None
        return str(mapped)

    assert "connection refused" in line(wrapped(ConnectionRefusedError()))
    # serve's aiohttp transport raises a refused connect as httpx's ConnectTimeout: still "refused"
    assert "connection refused" in line(wrapped(ConnectionRefusedError(), httpx2.ConnectTimeout))
    assert "no response" in line(httpx2.ConnectTimeout("t"))
    assert "cannot resolve" in line(wrapped(socket.gaierror(-2, "Name or service not known")))
    assert "stalled mid-answer" in line(httpx2.ReadTimeout("t"), started=True)
    assert "no response" in line(httpx2.ReadTimeout("t"))
    assert "dropped mid-answer" in line(httpx2.RemoteProtocolError("x"), started=True)
    assert errors.map_transport(ValueError("x"), provider="p") is None


# -- outcome → exit code and records -----------------------------------------------------------

def test_exit_codes_derive_from_the_outcome():
    assert exit_code_for(TurnResult()) == 0
    assert exit_code_for(TurnResult(outcome=Outcome.INTERRUPTED)) == 130
    assert exit_code_for(TurnResult(outcome=Outcome.OUTPUT_CLOSED)) == 141
    assert exit_code_for(TurnResult(outcome=Outcome.FAILED, error=errors.RateLimitError("x"))) == 5


def test_error_record_is_partial_only_with_text():
    failed = TurnResult(outcome=Outcome.FAILED, error=errors.ServerError("boom"))
    assert result_dict(failed)["partial"] is False
    cut = TurnResult(text="some", outcome=Outcome.FAILED, error=errors.ServerError("boom"))
    assert result_dict(cut)["partial"] is True and result_dict(cut)["code"] == "server_error"


# -- context building ---------------------------------------------------------------------------

def _result(text: str, outcome: Outcome = Outcome.OK) -> TurnResult:
    return TurnResult(text=text, stats=Stats(tokens=len(text.split())), outcome=outcome,
                      error=errors.ServerError("x") if outcome is Outcome.FAILED else None)


def test_failed_turns_without_text_are_not_context_nor_counted():
    conv = Conversation()
    conv.add(Turn("q1", _result("a1")))
    conv.add(Turn("q2", _result("", Outcome.FAILED)))
    conv.add(Turn("q3", _result("partial", Outcome.INTERRUPTED)))
    assert conv.history() == [Message("user", "q1"), Message("assistant", "a1"),
                              Message("user", "q3"), Message("assistant", "partial")]
    assert conv.turn_count == 2


@pytest.fixture
def log(tmp_path) -> ConversationLog:
    return ConversationLog(connect(tmp_path / "log.db"), warn=lambda _m: None)


def test_retry_is_a_branch_so_reloading_sends_one_exchange(log):
    conv = Conversation()
    for prompt, text in [("q1", "a1"), ("q2", "first")]:
        conv.add(Turn(prompt, _result(text), log.record(conv, "p", "m", prompt, _result(text))))
    conv.drop_last()  # /retry
    conv.add(Turn("q2", _result("second"), log.record(conv, "p", "m", "q2", _result("second"))))
    loaded = log.load(conv.id)
    assert loaded.history() == [Message("user", "q1"), Message("assistant", "a1"),
                                Message("user", "q2"), Message("assistant", "second")]
    assert loaded.turn_count == 2
    assert log.recent(1)[0]["turns"] == 2


def test_a_failed_turn_is_kept_in_the_log_but_not_resent(log):
    conv = Conversation()
    conv.add(Turn("q1", _result("a1"), log.record(conv, "p", "m", "q1", _result("a1"))))
    failed = _result("", Outcome.FAILED)
    conv.add(Turn("q2", failed, log.record(conv, "p", "m", "q2", failed)))
    conv.add(Turn("q3", _result("a3"), log.record(conv, "p", "m", "q3", _result("a3"))))
    loaded = log.load(conv.id)
    assert [t.prompt for t in loaded.turns] == ["q1", "q3"]
    states = [r["state"] for r in log.messages(conv.id) if r["role"] == "assistant"]
    assert states == ["ok", "error", "ok"]


def test_v3_logs_migrate_to_linked_turns(tmp_path):
    from streamchat.store_schema import V1, V2

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(V1 + V2)
    db.execute("INSERT INTO conversations VALUES (1, 0, 0, 'p', 'm', NULL, 't')")
    for i, (role, content) in enumerate([("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]):
        db.execute("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES (?, 1, ?, ?, 0)",
                   (i + 1, role, content))
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    log = ConversationLog(connect(path), warn=lambda _m: None)
    loaded = log.load(1)
    assert [(t.prompt, t.result.text) for t in loaded.turns] == [("q1", "a1"), ("q2", "a2")]
    assert log.recent(1)[0]["turns"] == 2


# -- wire parsers and prices ---------------------------------------------------------------------

def test_wire_parsers_read_cached_tokens_and_cost_uses_them():
    from streamchat.config import BUILTIN_PROVIDERS
    from streamchat.cost import turn_cost
    from streamchat.events import Usage
    from streamchat.providers._wire import AnthropicParser, OpenAIParser, events

    def lines_in(lines: list[str]) -> list[str]:
        return [line + "\n" for line in lines]

    openai_lines = ['data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}', "",
                    'data: {"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":1,'
                    '"prompt_tokens_details":{"cached_tokens":800}}}', "", "data: [DONE]", ""]
    usage = [e for e in events(lines_in(openai_lines), OpenAIParser(provider="openai", model="m")) if isinstance(e, Usage)]
    assert usage == [Usage(1000, 1, 800)]
    anthropic_lines = ["event: message_start",
                       'data: {"message":{"usage":{"input_tokens":200,"cache_read_input_tokens":800}}}', "",
                       "event: message_delta", 'data: {"delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}', "",
                       "event: message_stop", "data: {}", ""]
    usage = [e for e in events(lines_in(anthropic_lines), AnthropicParser(provider="anthropic", model="m"))
             if isinstance(e, Usage)]
    assert usage == [Usage(1000, 1, 800)]
    full = turn_cost(Settings(), BUILTIN_PROVIDERS["openai"], "gpt-4o-mini", Stats(tokens=0, input_tokens=1000))
    cached = turn_cost(Settings(), BUILTIN_PROVIDERS["openai"], "gpt-4o-mini",
                       Stats(tokens=0, input_tokens=1000, cached_tokens=800))
    assert full is not None and cached is not None and cached < full
    assert turn_cost(Settings(), BUILTIN_PROVIDERS["openai"], "no-such-model-x", Stats(tokens=5, input_tokens=5)) is None
    assert turn_cost(Settings(), BUILTIN_PROVIDERS["local"], "smollm2", Stats(tokens=5)) == 0.0


def test_sse_lines_split_only_on_cr_and_lf():
    from streamchat.providers._wire import LineSplitter

    def sse_lines(chunks: list[str]) -> list[str]:
        splitter = LineSplitter()
        return [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.close()

    chunks = ['data: {"t": "a\x85b\u2028c"}\r', "\n", "\ndata: x\rdata: y", "\n\n"]
    assert list(sse_lines(chunks)) == ['data: {"t": "a\x85b\u2028c"}', "", "data: x", "data: y", ""]
    assert list(sse_lines(["a\r", "b"])) == ["a", "b"]

    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet="ab\r\n\u2028"), st.lists(st.integers(min_value=0, max_value=40), max_size=6))
    def any_cut(text, points):
        points = sorted({p % (len(text) + 1) for p in points})
        pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
        whole = re.split(r"\r\n|\r|\n", text)
        assert sse_lines(pieces) == (whole if whole[-1] else whole[:-1])

    any_cut()


def test_error_lines_never_carry_escape_sequences():
    import io

    from streamchat.environment import Environment
    from streamchat.ui import UI

    err = io.StringIO()
    UI(Environment(stdin=None, stdout=io.StringIO(), stderr=err, environ={})).error(
        "openai reported an error mid-stream: \x1b]0;pwned\x07 \x1b[2J")
    assert "\x1b" not in err.getvalue() and "\x07" not in err.getvalue()


def test_blocking_and_asyncio_readers_give_the_same_events_for_any_chunking():
    """One push-based reader serves both paths: however the bytes are cut, the events are the same."""
    import asyncio
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from streamchat.providers._wire import AnthropicParser, OpenAIParser, aevents, events

    def chunk(delta, finish=None):
        return "data: " + json.dumps({"choices": [{"delta": delta, "finish_reason": finish}]}) + "\n\n"

    openai_text = (chunk({"content": "he\u2028llo"}) + chunk({"tool_calls": [{"index": 0, "id": "c", "function": {
        "name": "f", "arguments": '{"a"'}}]}) + chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]})
        + chunk({}, "tool_calls") + "data: [DONE]\n\n")
    anthropic_text = "".join(f"event: {name}\r\ndata: {json.dumps(data)}\r\n\r\n" for name, data in [
        ("message_start", {"message": {"usage": {"input_tokens": 3}}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "hé"}}),
        ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
        ("message_stop", {})])

    async def collect(pieces, parser):
        async def chunks():
            for piece in pieces:
                yield piece
        return [e async for e in aevents(chunks(), parser)]

    def cut(text, points):
        points = sorted({p % (len(text) + 1) for p in points})
        return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
    def check(points):
        for text, make in ((openai_text, lambda: OpenAIParser(provider="p", model="m")),
                           (anthropic_text, lambda: AnthropicParser(provider="p", model="m"))):
            whole = list(events([text], make()))
            assert list(events(cut(text, points), make())) == whole
            assert asyncio.run(collect(cut(text, points), make())) == whole

    check()


def test_text_read_together_with_an_error_event_is_delivered_before_the_error():
    """An upstream that sends its last text and an error event in one read: the text reaches the
    user (and the log) and the error follows; the reader used to drop the text with the error."""
    import asyncio
    import json

    from streamchat.errors import OverloadedError
    from streamchat.events import TextDelta
    from streamchat.providers._wire import AnthropicParser, OpenAIParser, aevents, events

    openai_text = ("data: " + json.dumps({"choices": [{"delta": {"content": "part"}, "finish_reason": None}]})
                   + "\n\ndata: " + json.dumps({"error": {"message": "busy", "type": "overloaded_error"}}) + "\n\n")
    anthropic_text = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in [
        ("message_start", {"message": {"usage": {"input_tokens": 3}}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "part"}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})])

    def blocking(pieces, parser):
        got = []
        with pytest.raises(OverloadedError):
            for event in events(pieces, parser):
                got.append(event)
        return got

    async def asyncio_path(pieces, parser):
        async def chunks():
            for piece in pieces:
                yield piece
        got = []
        with pytest.raises(OverloadedError):
            async for event in aevents(chunks(), parser):
                got.append(event)
        return got

    for text, make in ((openai_text, lambda: OpenAIParser(provider="p", model="m")),
                       (anthropic_text, lambda: AnthropicParser(provider="p", model="m"))):
        for cut in (len(text), *range(0, len(text), 7)):
            pieces = [text[:cut], text[cut:]]
            for got in (blocking(pieces, make()), asyncio.run(asyncio_path(pieces, make()))):
                assert [e for e in got if isinstance(e, TextDelta)] == [TextDelta("part")]


def test_serve_writes_text_events_as_the_general_encoder_would():
    """The fast path for text deltas (SSE and OpenAI chunks) gives the same bytes as the dict path."""
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from streamchat.events import TextDelta
    from streamchat.serve.wire import OpenAIChunks, sse

    chunks = OpenAIChunks('model "q"\u2028')

    @settings(max_examples=200, deadline=None)
    @given(st.text())
    def check(text):
        assert sse(TextDelta(text)) == f"event: token\ndata: {json.dumps({'text': text}, ensure_ascii=False)}\n\n"
        assert chunks.for_event(TextDelta(text)) == chunks.chunk({"content": text})
        assert json.loads(sse(TextDelta(text)).split("data: ", 1)[1]) == {"text": text}

    check()


def test_only_serve_loads_the_sdks_aiohttp_transport():
    """With aiohttp installed (the serve extra) the SDKs import their aiohttp transport on import
    (~0.1–0.2 s); the CLI imports them with it hidden, serve asks for it and gets it."""
    import subprocess
    import sys

    probe = """
import sys
from streamchat.providers._sdk import import_sdk, use_async_transport
if sys.argv[1] == "serve":
    use_async_transport()
from streamchat.config import ProviderConfig
from streamchat.providers.openai import OpenAIProvider
client = OpenAIProvider(ProviderConfig("o", "openai", base_url="http://127.0.0.1:9/v1", api_key="k"))._async_http_client()
print("aiohttp" in sys.modules, type(client).__name__)
"""  # openai only: anthropic goes through the same import_sdk, and its import costs ~1.5 s more
    cli = subprocess.run([sys.executable, "-c", probe, "cli"], capture_output=True, text=True, check=True)
    serve = subprocess.run([sys.executable, "-c", probe, "serve"], capture_output=True, text=True, check=True)
    assert cli.stdout.split() == ["False", "_DefaultAsyncHttpxClient"]  # the SDK's httpx default
    assert serve.stdout.split() == ["True", "_InstalledAioHttpClient"]  # the SDK's own name for it


def test_serve_loads_the_price_database_before_its_first_request(tmp_path):
    """Each turn's cost reads the price database (~0.2 s to load); the first turn of each serve
    worker loaded it on the event loop and stalled every stream there. The warm-up loads it, even
    when the model itself cannot be built yet (here: no key)."""
    import subprocess
    import sys

    from conftest import base_env

    probe = """
import sys
from streamchat.config import parse_settings
from streamchat.serve.app import _warm
from streamchat.service import Overrides
_warm(parse_settings({}), Overrides(model="openai:gpt-4o-mini"))
print("genai_prices.data" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", probe], env=base_env(tmp_path), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True"]


def test_context_check_looks_the_window_up_only_for_a_large_conversation():
    """A short question is not checked against the price database (~45 ms to load on every
    one-shot); one larger than any model's window still is, and an overflow is refused."""
    from streamchat.service import ChatSession, Overrides

    # a name of its own: adapters are cached per process by provider name, and other tests point "openai" elsewhere
    settings = parse_settings({"providers": {"windowed": {"type": "openai", "api_key": "k"}}})
    session = ChatSession(settings, Overrides(model="windowed:gpt-4o"))
    session.check_context("a short question")
    assert session._windows == {}
    session.check_context("word " * 10_000)  # ~12k tokens: over the smallest window, under gpt-4o's
    assert (session._windows["windowed:gpt-4o"] or 0) > 100_000
    with pytest.raises(errors.ContextOverflowError):
        session.check_context("word " * 200_000)


def test_adapters_are_shared_per_config_not_per_name():
    """The per-process adapter cache keyed on the name alone handed a later caller an adapter for
    another base URL (a test pointing "openai" at the real API broke three later ones)."""
    from streamchat.config import ProviderConfig
    from streamchat.providers.base import get_provider

    here = ProviderConfig("same", "openai", base_url="http://127.0.0.1:9/v1", api_key="k")
    there = ProviderConfig("same", "openai", base_url="http://127.0.0.1:10/v1", api_key="k")
    assert get_provider(here) is get_provider(ProviderConfig("same", "openai", base_url="http://127.0.0.1:9/v1",
                                                             api_key="k"))
    assert get_provider(there).base_url == "http://127.0.0.1:10/v1"


def test_chunk_json_parses_as_the_standard_library_does():
    """orjson reads the chunks (every token pays for it), the standard library what orjson refuses:
    the result is json.loads's for any JSON (integers within 64 bits), and a malformed chunk raises the
    same error."""
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from streamchat.providers._wire import _loads

    values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                          max_leaves=12)

    @settings(max_examples=150, deadline=None)
    @given(values, st.booleans())
    def check(value, ascii_only):
        text = json.dumps(value, ensure_ascii=ascii_only)
        assert _loads(text) == json.loads(text)

    check()
    for text in ('{"a": NaN}', '{"x": Infinity}'):
        assert repr(_loads(text)) == repr(json.loads(text))
    assert _loads('{"s": "\\ud83d", "t": ["a\\udfffb"]}') == {"s": "\ufffd", "t": ["a\ufffdb"]}  # no UTF-8 for a lone surrogate
    for bad in ('{"a": 1', "{'a': 1}", "", '{"a": 1} x'):
        with pytest.raises(json.JSONDecodeError):
            _loads(bad)
