"""The chat service seen from its front ends: one conversation model across the REPL, -c and
history; one stderr owner; serve turns built from the same settings as the CLI."""

from __future__ import annotations

import pexpect
import pytest
from fakeserver import Script
from terminal_emulator import Terminal, tty_env
from test_repl import exchange
from test_repl import repl as repl  # the REPL fixture
from turnhelp import assert_fails_alike

from streamchat.config import ProviderConfig
from streamchat.events import Message, Outcome, TurnResult
from streamchat.providers._sdk import import_sdk
from streamchat.providers.base import ChatRequest
from streamchat.providers.openai import OpenAIProvider
from streamchat.session import RetryPolicy, run_turn
from streamchat.sinks.terminal import MarkdownSink
from streamchat.ui import UI


def test_retry_then_continue_sends_one_exchange_and_counts_agree(repl, invoke, server):
    child = repl("-m", "openai:echo")
    for text in ("q1", "q2"):
        exchange(child, text, f"echo: {text}")
    exchange(child, "/retry", "echo: q2")
    exchange(child, "/stats", "conversation: 2 turns")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()

    listed = invoke("history")
    assert listed.code == 0 and listed.out.split("\t")[3] == "2"  # id, when, model, turns, title

    r = invoke("-c", "q3")
    assert r.code == 0, r.stderr
    assert server.last_messages() == [
        {"role": "user", "content": "q1"}, {"role": "assistant", "content": "echo: q1"},
        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "echo: q2"},
        {"role": "user", "content": "q3"},
    ]
    assert invoke("history").out.split("\t")[3] == "3"


def test_toolbar_and_stats_read_the_same_count(_server_instance, tmp_path):
    from streamchat.chat import ChatOptions
    from streamchat.config import parse_settings
    from streamchat.repl import Repl
    from streamchat.service import Overrides

    server = _server_instance
    settings = parse_settings({"providers": {"compat": {"type": "openai", "base_url": f"{server.url}/v1",
                                                        "api_key": "k"}}})
    env, _out, err = tty_env()
    ui = UI(env)
    repl = Repl(settings, ChatOptions(overrides=Overrides(model="compat:echo"), log=False, markdown=False), env, ui)
    repl.handle("q1")
    repl.handle("/retry")
    assert repl.toolbar().startswith(" compat:echo · 1 turn · ")
    repl.handle("/stats")
    assert "conversation: 1 turn," in err.getvalue()
    assert [m.content for m in repl.session.conversation.history()] == ["q1", "echo: q1"]


def test_failed_turn_without_text_is_not_a_turn(invoke, server):
    server.script("bad", Script(status=500))
    assert invoke("-m", "openai:echo", "q1").code == 0
    assert invoke("-c", "-m", "openai:bad", "--no-retry", "q2").code == 5
    assert invoke("history").out.split("\t")[3] == "1"
    assert invoke("-c", "-m", "openai:echo", "q3").code == 0
    assert [m["content"] for m in server.last_messages()] == ["q1", "echo: q1", "q3"]


def test_retry_notice_during_the_spinner_gets_its_own_line(_server_instance):
    server = _server_instance
    server.reset()
    server.script("slow503", Script(status=503, fail_first=1, first_delay=0.6, chunks=["fine"]))
    env, out, err = tty_env()
    ui = UI(env)
    provider = OpenAIProvider(ProviderConfig("openai", "openai", base_url=f"{server.url}/v1", api_key="k"))
    sink = MarkdownSink(env, ui, size=lambda: (80, 24), timer=False)
    result = run_turn(provider, ChatRequest("slow503", (Message("user", "q"),)), sink,
                      retry=RetryPolicy(retries=1, base_delay=0.01), notice=ui.notice)
    assert result.outcome is Outcome.OK and result.text == "fine"
    assert "waiting" in err.getvalue()  # the spinner was drawn before the 503 came back
    term = Terminal(80, 24)
    term.feed(err.getvalue())
    lines = [line for line in term.lines() if line]
    notices = [line for line in lines if "retrying" in line]
    assert len(notices) == 1 and notices[0].startswith("openai server error (HTTP 503)"), lines
    assert not any("waiting" in line for line in lines)  # the spinner was erased, not left beside text


@pytest.fixture
def serve_with_config(tmp_path, _server_instance):
    pytest.importorskip("fastapi")
    from servehelp import ServeProcess

    _server_instance.reset()
    proc = ServeProcess(tmp_path, _server_instance, "-m", "openai:echo",
                        config_extra='system = "be brief"\ntemperature = 0.25\nmax_tokens = 77\n')
    yield proc
    proc.stop()


def test_serve_honours_the_config_system_temperature_and_max_tokens(serve_with_config, _server_instance):
    openai = import_sdk("openai")  # a plain `import openai` brings aiohttp in: later SDK clients take it

    server = _server_instance
    client = openai.OpenAI(base_url=f"{serve_with_config.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="openai:echo", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: hi"
    body = server.requests[-1].body
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["temperature"] == 0.25 and body["max_tokens"] == 77

    # what the request says wins over the config, as flags do on the command line
    done = client.chat.completions.create(model="openai:echo", temperature=0.9, max_tokens=5,
                                          messages=[{"role": "system", "content": "mine"},
                                                    {"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == "echo: hi"
    body = server.requests[-1].body
    assert body["messages"] == [{"role": "system", "content": "mine"}, {"role": "user", "content": "hi"}]
    assert body["temperature"] == 0.9 and body["max_tokens"] == 5


def _sdk_provider(server, kind: str):
    """An openai or anthropic adapter on the fake server."""
    from streamchat.providers.anthropic import AnthropicProvider

    if kind == "openai":
        return OpenAIProvider(ProviderConfig("o", "openai", base_url=f"{server.url}/v1", api_key="k"))
    return AnthropicProvider(ProviderConfig("a", "anthropic", base_url=server.url, api_key="k"))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("path", ["asyncio", "blocking"])
def test_turns_reuse_the_upstream_connection(server, kind, path):
    """Both paths read a body to its end after the last event, so the next turn goes out on the
    same connection (each request used to open one: a TCP and TLS handshake every time)."""
    import asyncio

    from streamchat.events import TextDelta
    from streamchat.session import run_turn_async

    server.script("kept", Script(chunks=["a", "b"], keep_alive=True))
    provider = _sdk_provider(server, kind)
    request = ChatRequest("kept", (Message("user", "q"),))

    async def turns() -> list[str]:
        texts = []
        for _ in range(3):
            async for item in run_turn_async(provider, request):
                if isinstance(item, TurnResult):
                    assert item.outcome is Outcome.OK
                    texts.append(item.text)
        return texts

    if path == "asyncio":
        assert asyncio.run(turns()) == ["ab"] * 3
    else:
        assert ["".join(e.text for e in provider.stream(request) if isinstance(e, TextDelta))
                for _ in range(3)] == ["ab"] * 3
    assert server.connections == 1


@pytest.mark.parametrize("path", ["asyncio", "blocking"])
def test_a_body_left_open_after_the_last_event_does_not_hold_the_turn(server, path):
    """Reading to the end of the body is bounded: the turn ends though the server never does."""
    import asyncio
    import threading

    from streamchat.session import run_turn_async
    from streamchat.sinks import NullSink

    hold = threading.Event()
    server.script("open", Script(chunks=["a"], keep_alive=True, hold=hold))
    provider = OpenAIProvider(ProviderConfig("o", "openai", base_url=f"{server.url}/v1", api_key="k"))
    request = ChatRequest("open", (Message("user", "q"),))

    async def turn() -> list[object]:
        return [item async for item in run_turn_async(provider, request)]

    def blocking() -> TurnResult:
        done: list[TurnResult] = []
        worker = threading.Thread(target=lambda: done.append(run_turn(provider, request, NullSink())), daemon=True)
        worker.start()
        worker.join(10)
        assert done, "the turn was still waiting for the end of the body"
        return done[0]

    try:
        result = asyncio.run(asyncio.wait_for(turn(), 10))[-1] if path == "asyncio" else blocking()
    finally:
        hold.set()
    assert isinstance(result, TurnResult) and result.outcome is Outcome.OK and result.text == "a"



@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_sdk_sends_the_adapter_body_unchanged(server, kind):
    """The whole body travels as `extra_body` (the SDKs' per-call transforms cost ~0.1–4 ms a
    request on serve's loop): what reaches the wire is exactly what the adapter built, with no
    field dropped, renamed or added by the SDK."""
    import asyncio

    from streamchat.events import ToolSpec

    provider = _sdk_provider(server, kind)
    tool = ToolSpec("lookup", "Look a word up", {"type": "object", "properties": {"word": {"type": "string"}}})
    request = ChatRequest("echo", (Message("system", "brief"), Message("user", "q")), temperature=0.5, max_tokens=9,
                          params=(("top_p", 0.9), ("stop", ("END",))), tools=(tool,))
    expected = provider._arguments(request)
    expected.update(expected.pop("extra_body", None) or {})

    async def asyncio_turn() -> None:
        async for _ in provider.astream(request):
            pass

    list(provider.stream(request))
    blocking = server.requests[-1].body
    asyncio.run(asyncio_turn())
    assert blocking == server.requests[-1].body == expected
    assert expected["model"] == "echo" and expected["stream"] is True and expected["messages"]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_serves_request_is_the_one_the_sdks_create_sends(server, kind):
    """serve's asyncio path sends the request the SDK's own asyncio `create()` builds (captured once,
    then given each answer's body): the same method, URL, headers (auth, version, SDK headers) and
    body as a create() call with the same arguments, on the SDK's HTTP client."""
    import asyncio

    provider = _sdk_provider(server, kind)
    request = ChatRequest("echo", (Message("system", "brief"), Message("user", "q é ∑")), temperature=0.5,
                          max_tokens=9, params=(("stop", ("END",)),))

    async def both() -> None:
        provider.prepare_async()
        async with provider._endpoint(provider._async_client)(**provider._call_arguments(request)) as response:
            await response.http_response.aread()
        async for _ in provider.astream(request):
            pass

    asyncio.run(both())
    by_sdk, served = server.requests[-2:]
    assert served.path == by_sdk.path and served.body == by_sdk.body
    assert len(served.raw) == len(by_sdk.raw) and "q é ∑".encode() in served.raw  # the same JSON form, in any key order
    assert served.headers == by_sdk.headers
    assert served.headers["x-stainless-async"].startswith("async:")
    assert served.headers.get("authorization", served.headers.get("x-api-key")) in ("Bearer k", "k")


FAULTS = {
    "401": Script(status=401, error_message="nope"),
    "429": Script(status=429, error_message="nope", headers={"Retry-After": "2"}),
    "500": Script(status=500, error_message="nope"),
    "stall": Script(chunks=["a", "b", "c"], fault="stall", fault_after=2),
    "no first byte": Script(first_delay=3.0),
    "drop": Script(chunks=["a", "b", "c"], fault="drop", fault_after=2),
    "malformed": Script(chunks=["a", "b", "c"], fault="malformed", fault_after=1),
    "error event": Script(chunks=["a", "b", "c"], fault="error_event", fault_after=1, error_message="overloaded"),
    "refused": Script(),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_serves_path_fails_as_the_blocking_path(server, kind, fault):
    """serve's path sends through the SDK's HTTP client and raises the SDK's own status errors, so every
    fault of the failure matrix ends its turn as the blocking path's does: the same outcome, error
    type, line, hint and Retry-After, and the same partial text."""
    import socket

    from streamchat.providers.anthropic import AnthropicProvider

    server.script("m", FAULTS[fault])
    url = server.url
    if fault == "refused":
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{free.getsockname()[1]}"
    if kind == "openai":
        provider = OpenAIProvider(ProviderConfig("o", "openai", base_url=f"{url}/v1", api_key="k"), timeout=1.0)
    else:
        provider = AnthropicProvider(ProviderConfig("a", "anthropic", base_url=url, api_key="k"), timeout=1.0)
    assert_fails_alike(provider, ChatRequest("m", (Message("user", "q"),)))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_an_asyncio_turn_runs_in_its_callers_task_alone(server, kind):
    """Reading the body's end (for connection reuse) is bounded by a timer on the turn's own task:
    `wait_for` ran it as a task of its own, so every answer's end reached serve's clients a loop
    turn or two late (25–50 ms each under 200 streams). No task is started during a turn."""
    import asyncio
    import gc

    from streamchat.session import run_turn_async

    server.script("kept", Script(chunks=["a", "b"], keep_alive=True))
    provider = _sdk_provider(server, kind)
    request = ChatRequest("kept", (Message("user", "q"),))

    async def tasks_started() -> list[str]:
        started: list[str] = []

        def factory(loop, coro, **kwargs):
            started.append(getattr(coro, "__qualname__", repr(coro)))
            return asyncio.Task(coro, loop=loop, **kwargs)

        items = [item async for item in run_turn_async(provider, request)]  # the client and its pool warm up
        gc.collect()  # an SDK client left by an earlier test closes itself in a task when collected
        gc.disable()
        try:
            asyncio.get_running_loop().set_task_factory(factory)
            items = [item async for item in run_turn_async(provider, request)]
        finally:
            asyncio.get_running_loop().set_task_factory(None)
            gc.enable()
        assert isinstance(items[-1], TurnResult) and items[-1].outcome is Outcome.OK and items[-1].text == "ab"
        return started

    assert asyncio.run(tasks_started()) == []
