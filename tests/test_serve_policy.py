"""serve's checks, in-process: Host/Origin policy, model policy, request parsing, log limits, the ASGI lifespan."""

from __future__ import annotations

import logging

import pytest
from fakeserver import FakeLLMServer, Script

from streamchat.config import parse_settings
from streamchat.logs import RepeatLimit
from streamchat.serve.parse import decode_json, parse_call
from streamchat.serve.policy import ModelPolicy, OriginPolicy, Refused, hostname


def test_hostname_strips_ports_and_brackets():
    assert hostname("LocalHost:8765") == "localhost"
    assert hostname("[::1]:80") == "::1"
    assert hostname("127.0.0.1") == "127.0.0.1"


def test_loopback_bind_accepts_loopback_and_allowed_names_only():
    policy = OriginPolicy.for_bind("127.0.0.1", ("myhost.lan",))
    for ok in ("127.0.0.1:1", "localhost", "[::1]:2", "myhost.lan:9"):
        policy.check_host(ok)
    for bad in ("evil.com", "", "127.0.0.1.evil.com"):
        with pytest.raises(Refused):
            policy.check_host(bad)
    OriginPolicy.for_bind("0.0.0.0").check_host("anything")  # a token guards a public bind


def test_origin_checks():
    policy = OriginPolicy.for_bind("127.0.0.1", cors_origin="https://app.example")
    policy.check_origin(None, "127.0.0.1:8765", None)
    policy.check_origin("http://127.0.0.1:8765", "127.0.0.1:8765", "same-origin")
    policy.check_origin("https://app.example", "127.0.0.1:8765", "cross-site")
    for origin in ("http://evil.com", "null", "http://127.0.0.1:9999"):
        with pytest.raises(Refused):
            policy.check_origin(origin, "127.0.0.1:8765", None)
    with pytest.raises(Refused):
        OriginPolicy.for_bind("127.0.0.1").check_origin(None, "127.0.0.1:8765", "cross-site")


def test_model_policy():
    settings = parse_settings({"aliases": {"fast": "openai:gpt-4o-mini"},
                               "providers": {"vllm": {"type": "openai", "base_url": "http://x/v1", "models": ["q"]}}})
    policy = ModelPolicy(settings, "local:smollm2")
    assert policy.choose(None) == "local:smollm2"
    assert policy.choose("local") == "local"  # the same target as the server's own
    assert policy.choose("fast") == "fast" and policy.choose("vllm:q") == "vllm:q"
    assert policy.choose("anthropic") == "anthropic"  # the built-in's default model, which /v1/models lists
    for spec in ("local:/etc/passwd", "x.gguf", "nosuch:model", "anthropic:x", "openai:o1-pro", "vllm:other"):
        with pytest.raises(Refused) as info:
            policy.choose(spec)
        assert "/etc" not in info.value.message
    with pytest.raises(Refused):
        policy.choose(["x"])
    assert ModelPolicy(settings, "local:smollm2", allow_local=True).choose("local:/m.gguf") == "local:/m.gguf"
    offered = policy.offered()
    assert offered[0] == "local:smollm2" and "fast" in offered and "vllm:q" in offered
    assert not any(o.startswith("local:") for o in offered[1:])


def test_model_policy_accepts_what_it_lists_and_the_allowed_patterns_only():
    """A key in the environment used to make every model of a built-in provider choosable (openai:o1-pro,
    anthropic:claude-opus-4-1) while /v1/models did not list them. Now: what is listed, plus `--allow-model`
    patterns, which never open local files."""
    settings = parse_settings({})
    strict = ModelPolicy(settings, "openai:echo")
    for spec in strict.offered():
        assert strict.choose(spec) == spec
    for spec in ("openai:o1-pro", "anthropic:claude-opus-4-1", "ollama:qwen3"):
        with pytest.raises(Refused):
            strict.choose(spec)
    loose = ModelPolicy(settings, "openai:echo", patterns=("openai:o1*", "anthropic:claude-opus-4-1", "*"))
    assert loose.choose("openai:o1-pro") == "openai:o1-pro"
    assert "anthropic:claude-opus-4-1" in loose.offered() and "openai:o1*" not in loose.offered()
    for spec in ("local:/m.gguf", "local"):
        with pytest.raises(Refused):
            loose.choose(spec)


def test_parse_call_accepts_openai_and_native_shapes():
    call = parse_call({"model": "m", "messages": [{"role": "developer", "content": "s"},
                                                  {"role": "user", "content": [{"type": "text", "text": "q"}]}],
                       "stream": True, "stream_options": {"include_usage": True}, "stop": "END", "top_p": 1,
                       "max_completion_tokens": 9}, openai=True)
    assert [m.role for m in call.messages] == ["system", "user"] and call.messages[1].content == "q"
    assert call.stream and call.include_usage and call.max_tokens == 9
    assert dict(call.params) == {"stop": ("END",), "top_p": 1.0}
    native = parse_call({"prompt": "q", "system": "s"}, openai=False)
    assert native.system == "s" and native.messages[0].content == "q"
    with pytest.raises(Refused, match="prompt"):
        parse_call({"prompt": "q"}, openai=True)  # not an OpenAI field


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "user", "content": "q"}], "temperature": True},
    {"messages": [{"role": "user", "content": "q"}], "max_tokens": 0},
    {"messages": [{"role": "user", "content": "q"}], "stop": ["a"] * 5},
    {"messages": [{"role": "assistant", "content": "q"}]},
    {"messages": "q"},
])
def test_parse_call_refuses(body):
    with pytest.raises(Refused) as info:
        parse_call(body, openai=True)
    assert info.value.status == 400


def test_decode_json_refuses_nan_bad_utf8_and_deep_nesting():
    for raw in (b'{"a": NaN}', b'{"a": "\xff"}', b"[1]", b'{"a": ' * 40 + b"1" + b"}" * 40):
        with pytest.raises(Refused):
            decode_json(raw)
    assert decode_json(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}


def test_decode_json_refuses_a_lone_surrogate_escape():
    """JSON may escape half of a UTF-16 pair ("\\ud800"); Python reads it as a string no encoder takes, so
    the upstream request failed later as "502 unexpected error from openai: UnicodeEncodeError". It is
    the client's bad input: 400 here. A whole pair (an emoji) and an escaped backslash stay fine."""
    for raw in (rb'{"messages": [{"role": "user", "content": "hi \ud800"}]}', rb'{"\udfff": 1}',
                rb'{"a": ["x", {"b": "\uDBFF"}]}'):
        with pytest.raises(Refused) as info:
            decode_json(raw)
        assert info.value.status == 400 and "surrogate" in info.value.message, raw
    assert decode_json(rb'{"a": "\ud83d\ude00", "b": "\\ud800"}') == {"a": "\U0001f600", "b": "\\ud800"}


def test_repeat_limit_drops_a_flood_and_counts_it():
    limit = RepeatLimit(burst=3, window=60)
    records = [logging.LogRecord("x", logging.ERROR, "", 0, "accept failed: %s", ("EMFILE",), None) for _ in range(10)]
    assert sum(limit.filter(r) for r in records) == 3
    other = logging.LogRecord("x", logging.ERROR, "", 0, "something else", (), None)
    assert limit.filter(other)


class _Turn:
    """A session stand-in for the bridge alone (its queue, heartbeat and hand-off; the SDK path is
    covered end to end in test_serve.py): `ask_async` yields what `script` says, in loop turns."""

    streams_async = True

    def __init__(self, script: list[object]) -> None:
        self.script = script

    async def ask_async(self, prompt, attachments=()):
        import asyncio

        for step in self.script:
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                yield step


def test_turn_stream_pings_while_the_upstream_is_silent_then_delivers_everything():
    import asyncio

    from streamchat.events import Outcome, TextDelta, TurnResult
    from streamchat.serve.bridge import Finished, TurnStream

    result = TurnResult(outcome=Outcome.OK)
    turn = TurnStream(_Turn([0.25, TextDelta("a"), TextDelta("b"), 0.12, result]), "q")  # type: ignore[arg-type]

    async def collect():
        return [batch async for batch in turn.batches(heartbeat=0.05)]

    got = asyncio.run(collect())
    assert got[:2] == [None, None]  # silent for 0.25 s: a ping every 0.05 s
    events = [item for batch in got if batch is not None for item in batch]
    assert events == [TextDelta("a"), TextDelta("b"), Finished(result)]
    assert None in got[got.index([TextDelta("a"), TextDelta("b")]) + 1:]  # silent again before the end


def test_an_event_reaches_the_response_one_loop_turn_after_it_is_queued():
    """Under 200 streams one turn of the loop takes 25–50 ms: a wait wrapped in its own task
    (`asyncio.wait_for`) cost every stream one or two more before its first event."""
    import asyncio

    from streamchat.events import Outcome, TextDelta, TurnResult
    from streamchat.serve.bridge import TurnStream

    async def measure() -> list[int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        clock = asyncio.ensure_future(ticker())
        sent: list[int] = []

        class Marked(_Turn):
            async def ask_async(self, prompt, attachments=()):
                for step in self.script:
                    await asyncio.sleep(0.01)
                    sent.append(ticks)
                    yield step

        turn = TurnStream(Marked([TextDelta("a"), TextDelta("b"), TurnResult(outcome=Outcome.OK)]), "q")  # type: ignore[arg-type]
        lags = []
        async for batch in turn.batches(heartbeat=15.0):
            if batch is not None:
                lags.append(ticks - sent[-1])
        clock.cancel()
        return lags

    assert max(asyncio.run(measure())) <= 1


def _app(settings: object = None, model: str = "openai:gpt-4o-mini", **options: object):
    """serve's app in this process (for `settings`, serving `model`), with the heap settings create_app
    makes for a server put back."""
    import gc

    from streamchat.serve import app as serve_app
    from streamchat.service import Overrides

    threshold = gc.get_threshold()
    try:
        return serve_app.create_app(settings or parse_settings({}), Overrides(model=model),  # type: ignore[arg-type]
                                    serve_app.ServeOptions(**options))
    finally:  # create_app settles a server's heap; this is the test process
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_a_request_body_that_stops_coming_is_refused_in_time(monkeypatch):
    """A client that declares a body and sends only part of it holds no request open: 408 once
    BODY_TIMEOUT_S has passed (shortened here), from the app itself, in-process over ASGI."""
    import asyncio
    import json

    from streamchat.serve import http_io

    monkeypatch.setattr(http_io, "BODY_TIMEOUT_S", 0.2)
    app = _app()
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8765),
             "headers": [(b"host", b"127.0.0.1:8765"), (b"content-type", b"application/json"),
                         (b"content-length", b"100")]}

    async def call() -> list[dict]:
        parts = [{"type": "http.request", "body": b'{"model": "x", ', "more_body": True}]
        sent: list[dict] = []

        async def receive() -> dict:
            if parts:
                return parts.pop()
            await asyncio.sleep(3600)  # the rest never comes
            return {}

        async def send(message: dict) -> None:
            sent.append(message)

        await asyncio.wait_for(app(scope, receive, send), 10)
        return sent

    sent = asyncio.run(call())
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["error"]["code"] == "body_timeout"


def test_a_stopping_worker_closes_its_pooled_upstream_connections():
    """serve keeps upstream connections for reuse; as a worker stops (the ASGI lifespan's
    shutdown) it closes them, rather than leaving them to the process's death. In-process, so
    that the process outliving the shutdown shows the difference."""
    import asyncio
    import time

    import httpx


    # an upstream of its own, so no other test's pooled connection ends here while this one counts;
    # and a provider name of its own: adapters are cached per process
    server = FakeLLMServer().start()
    settings = parse_settings({"providers": {"closing": {"type": "openai", "base_url": f"{server.url}/v1",
                                                         "api_key": "k"}}})
    app = _app(settings, "closing:pooled")

    def ended_within(seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while server.ended == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        return server.ended

    async def run() -> tuple[int, int]:
        lifespan: asyncio.Queue[dict] = asyncio.Queue()
        sent: asyncio.Queue[dict] = asyncio.Queue()
        await lifespan.put({"type": "lifespan.startup"})
        task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan.get, sent.put))
        assert (await sent.get())["type"] == "lifespan.startup.complete"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as client:
            r = await client.post("/v1/chat/completions", json={
                "model": "closing:pooled", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and "alive" in r.text
        before = await asyncio.to_thread(ended_within, 0.3)  # the answer is done; its connection stays pooled
        await lifespan.put({"type": "lifespan.shutdown"})
        assert (await sent.get())["type"] == "lifespan.shutdown.complete"
        await task
        return before, await asyncio.to_thread(ended_within, 5)

    server.script("pooled", Script(chunks=["kept ", "alive"], keep_alive=True))
    try:
        before, after = asyncio.run(run())
    finally:
        server.stop()
    assert (before, after) == (0, 1)


def test_the_app_runs_no_opentelemetry_per_request() -> None:
    """FastAPI's native telemetry (0.165+) is off and its exception middleware out of the stack: the
    server configures no tracer, and the lookups were ~10% of a request's fixed CPU."""
    app = _app()
    layer, names = app.build_middleware_stack(), []
    while layer is not None:
        names.append(type(layer).__name__)
        layer = getattr(layer, "app", None)
    assert "Guard" in names and "ServerErrorMiddleware" in names
    assert not [name for name in names if "Telemetry" in name]
    native = getattr(app, "_native_telemetry", None)
    assert native is None or not native.enabled()


def test_the_streaming_routes_skip_fastapis_routing_and_keep_every_check() -> None:
    """`/stream` and `/v1/chat/completions` are called from the innermost middleware, past FastAPI's
    router (~0.1 ms of CPU per request): the gate still refuses first, other methods and paths get
    FastAPI's own answers, and a route given a dependency by its `include_router` is FastAPI's again,
    so the dependency applies."""
    import asyncio

    import httpx
    from fastapi import Depends, FastAPI, HTTPException

    from streamchat.serve import app as serve_app
    from streamchat.serve import routes_openai, routes_stream

    token = "streaming-routes-token-0123456789"
    app = _app(token=token)
    direct = {key for layer in app.user_middleware for key in layer.kwargs.get("endpoints", ())}
    assert direct == {("GET", "/stream"), ("POST", "/stream"), ("POST", "/v1/chat/completions")}

    def refuse() -> None:
        raise HTTPException(403, "not through this router")

    guarded = FastAPI()
    guarded.include_router(routes_stream.router, dependencies=[Depends(refuse)])
    guarded.include_router(routes_openai.router)
    assert set(serve_app._direct(guarded)) == {("POST", "/v1/chat/completions")}
    guarded.add_middleware(serve_app._Direct, endpoints=serve_app._direct(guarded))

    async def ask(to: FastAPI, method: str, path: str, **kwargs: object) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=to), base_url="http://127.0.0.1:8765") as client:
            return await client.request(method, path, **kwargs)

    auth = {"Authorization": f"Bearer {token}"}
    assert asyncio.run(ask(app, "GET", "/stream", params={"prompt": "x"})).status_code == 401
    assert asyncio.run(ask(app, "POST", "/v1/chat/completions", json={})).status_code == 401
    assert asyncio.run(ask(app, "GET", "/stream", headers={**auth, "Host": "evil.com"})).status_code == 421
    missing = asyncio.run(ask(app, "GET", "/stream", headers=auth))
    assert missing.status_code == 400 and "prompt" in missing.json()["error"]["message"]
    for method, path, status in (("PUT", "/stream", 405), ("GET", "/v1/chat/completions", 405),
                                 ("GET", "/stream/", 307), ("GET", "/Stream", 404)):
        answer = asyncio.run(ask(app, method, path, headers=auth))
        assert answer.status_code == status, (method, path)
        if status != 307:
            assert answer.json()["error"]["code"] == ("not_found" if status == 404 else "http_error")
    assert asyncio.run(ask(guarded, "GET", "/stream", params={"prompt": "x"})).status_code == 403
