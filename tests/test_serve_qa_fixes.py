"""serve's answers to QA findings of session 39, in-process where the fault allows: header size,
refusals in the spend log, access-key ranges, `param` in error objects, `--cors` values, 1e999 in JSON."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("uvicorn", reason="the `serve` extra is installed by .ci/run")


# -- QA-2: request headers past 64 KiB are a 431, also when one send completes them ------------------

async def _ok_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body, as serve's routes do
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _protocols() -> list[type[asyncio.Protocol]]:
    from streamchat.serve import protocol

    found: list[type[asyncio.Protocol]] = [protocol.HeaderTimeoutH11Protocol]
    if protocol.HTTP_PROTOCOL is not protocol.HeaderTimeoutH11Protocol:
        found.append(protocol.HTTP_PROTOCOL)
    return found


@contextlib.contextmanager
def _uvicorn(http: type[asyncio.Protocol]) -> Iterator[int]:
    """uvicorn on a free loopback port, speaking through `http`, in a thread of this process."""
    import uvicorn

    from streamchat.serve.protocol import MAX_HEADER_BYTES

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_ok_app, http=http, log_config=None, log_level="critical", lifespan="off",
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.025)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _status(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        with contextlib.suppress(OSError):  # the server may close while the rest is still being sent
            s.sendall(request)
        reply = b""
        with contextlib.suppress(OSError):
            while len(reply) < 12 and (chunk := s.recv(4096)):
                reply += chunk
    return reply[:12]


@pytest.mark.parametrize("http", _protocols(), ids=lambda c: c.__name__)
def test_headers_over_64_kib_sent_at_once_are_refused(http):
    """QA-2: the chunk that completed the headers was never counted, so headers of 66,000-120,000
    bytes sent in one go were served (431 only from ~130,000). Its bytes up to the blank line count now;
    a body in the same chunk does not."""
    with _uvicorn(http) as port:
        for n in (66_000, 100_000, 120_000, 130_000):
            head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-big: " + b"a" * n + b"\r\n\r\n"
            assert _status(port, head) == b"HTTP/1.1 431", n
        small = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-big: " + b"a" * 60_000 + b"\r\n\r\n"
        assert _status(port, small) == b"HTTP/1.1 200"
        body = b"x" * 200_000  # a large body right behind the headers is not header bytes
        post = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nX-big: " % len(body)
                + b"a" * 30_000 + b"\r\n\r\n" + body)
        assert _status(port, post) == b"HTTP/1.1 200"
        blank_first = b"\r\n\r\n" + b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-big: " + b"a" * 100_000 + b"\r\n\r\n"
        assert _status(port, blank_first) != b"HTTP/1.1 200"


# -- in-process serve app ------------------------------------------------------------------------

def _app(settings: dict | None = None, model: str = "openai:echo", **options: object):
    """serve's app in this process (as test_serve_policy builds it), the heap settings put back."""
    import gc

    from streamchat.config import parse_settings
    from streamchat.serve import app as serve_app
    from streamchat.service import Overrides

    threshold = gc.get_threshold()
    try:
        return serve_app.create_app(parse_settings(settings or {}), Overrides(model=model),
                                    serve_app.ServeOptions(**options))  # type: ignore[arg-type]
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _post(app, path: str, body: object, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    import httpx

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as client:
            content = body if isinstance(body, bytes) else __import__("json").dumps(body).encode()
            return await client.post(path, content=content, headers={"Content-Type": "application/json", **(headers or {})})

    return asyncio.run(go())


def _access(tmp_path, *args: str) -> tuple[int, str, str]:
    """`streamchat access …` in-process, on the key store at tmp_path/keys.db."""
    import io
    import os

    from streamchat.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    code = main(["access", *args, "--state", str(tmp_path / "keys.db")], dict(os.environ), stdout=out, stderr=err)
    return code, out.getvalue().decode(), err.getvalue().decode()


# -- QA-4: a model_not_priced refusal goes into the spend log -------------------------------------

def test_a_key_refused_for_an_unpriced_model_is_in_the_spend_log(tmp_path, monkeypatch):
    """QA-4: README says every request of a key, refusals too, goes into the spend log; a 403
    model_not_priced (a key with a budget, a model without a price) left no row."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, key, err = _access(tmp_path, "create", "alice", "--budget", "0.0001", "--period", "day")
    assert code == 0, err
    app = _app(keys=True, state=str(tmp_path / "keys.db"), token="admin-token-0123456789abcdef")
    for _ in range(2):
        r = _post(app, "/v1/chat/completions", {"model": "openai:echo", "messages": [{"role": "user", "content": "hi"}]},
                  {"Authorization": f"Bearer {key.strip()}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_priced"
    code, out, err = _access(tmp_path, "usage", "--since", "1d", "--json")
    assert code == 0, err
    rows = [__import__("json").loads(line) for line in out.splitlines()]
    assert [(r["key"], r["model"], r["requests"], r["errors"], r["statuses"]) for r in rows] == [
        ("alice", "openai:echo", 2, 2, {"model_not_priced": 2})]


def test_access_usage_says_1_request_and_1_error(tmp_path, monkeypatch):
    """QA-4 (also): `access usage` printed "1 requests" and "1 errors"."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    key = _access(tmp_path, "create", "alice", "--budget", "0.0001")[1].strip()
    app = _app(keys=True, state=str(tmp_path / "keys.db"))
    _post(app, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, {"Authorization": f"Bearer {key}"})
    code, out, err = _access(tmp_path, "usage", "--since", "1d")
    assert code == 0, err
    assert out.splitlines() == ["alice\topenai:echo\t1 request\t0+0 tokens\t$0\t1 error",
                                "total\t\t1 request\t\t$0\t1 error"]


# -- QA-15: each 400 names its parameter in `param` -------------------------------------------------

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("extra", "param"), [
    ({"max_tokens": 0}, "max_tokens"),
    ({"logprobs": True}, "logprobs"),
    ({"n": 2}, "n"),
    ({"stop": 5}, "stop"),
    ({"temperature": 3}, "temperature"),
    ({"model": 5}, "model"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "tool", "content": "r"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, "messages"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "nope"}}}},
     "response_format.json_schema.schema"),
    ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0]"),
])
def test_a_malformed_request_names_its_parameter(extra, param, monkeypatch):
    """QA-15: every 400 had `"param": null`, though the message named the parameter and OpenAI's
    SDKs expose it as `BadRequestError.param`."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    r = _post(_app(), "/v1/chat/completions", {"model": "openai:echo", "messages": HI, **extra})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param, error
    assert f"'{param}'" in error["message"] or param == "messages"  # "the last message must be from the user"


def test_an_error_without_one_parameter_keeps_param_null(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    r = _post(_app(), "/v1/chat/completions", b"{not json")
    assert r.status_code == 400 and r.json()["error"]["param"] is None


# -- QA-11 (serve): a number JSON reads as infinity is the client's 400, not a 502 ------------------

TOOL_X = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "x": 1e999}}}


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": "TOOL_X"}, "tools[0].function.parameters.x"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {
        "type": "object", "properties": {"a": {"type": "number", "maximum": "INF"}}}}}},
     "response_format.json_schema.schema.properties.a.maximum"),
    ({"temperature": "INF"}, "temperature"),
])
def test_an_infinite_number_in_the_body_is_a_400_naming_where(extra, param, server, monkeypatch):
    """QA-11: `1e999` inside `tools` or a schema parsed to inf, passed every check, and failed when
    the upstream request was encoded: 502 "a fault on the server's side" and a WARNING in serve's log.
    NaN/Infinity literals were already a 400; now 1e999 (and 1000-digit decimals) are too, naming the place."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    body = __import__("json").dumps({"model": "openai:echo", "messages": HI, **extra})
    body = body.replace('"TOOL_X"', '[{"type": "function", "function": {"name": "f", "parameters": '
                                    '{"type": "object", "x": 1e999}}}]').replace('"INF"', "1e999")
    r = _post(_app(), "/v1/chat/completions", body.encode())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and f"'{param}'" in r.json()["error"]["message"]
    assert not server.requests  # nothing went upstream


def test_large_finite_numbers_and_odd_keys_pass_the_range_check():
    from streamchat.serve.parse import _infinite_at, decode_json

    assert decode_json(b'{"a": 1.5e308, "b": [1e-999]}') == {"a": 1.5e308, "b": [0.0]}
    assert _infinite_at({"a b": [{"c": float("inf")}]}, "") == '["a b"][0].c'


# -- QA-17: --cors takes one origin, checked at start ------------------------------------------------

@pytest.mark.parametrize("value", ["*", "evil.com", "localhost:3000", "http://x/y", "http://u@x", "file:///x", "null",
                                   "http://x:99999", ""])
def test_serve_refuses_a_cors_value_that_can_never_match(value, invoke):
    """QA-17: `--cors '*'` started, then refused every cross-origin request with 403 while sending
    `access-control-allow-origin: *`; `--cors evil.com` (no scheme) started and matched nothing."""
    with socket.socket() as taken:  # without the check, serve fails on the port instead (never serves here)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = invoke("serve", "-m", "openai:echo", "--workers", "1", "--port", str(taken.getsockname()[1]), "--cors", value)
    assert done.code == 2, done
    assert "--cors" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_cors_origin_is_taken_as_browsers_send_it():
    from streamchat.serve.spec import cors_origin

    assert cors_origin("http://app.example") == "http://app.example"
    assert cors_origin("https://App.Example:443/") == "https://app.example"
    assert cors_origin("http://localhost:3000") == "http://localhost:3000"
    assert cors_origin("http://[::1]:8080") == "http://[::1]:8080"
    assert cors_origin("chrome-extension://abcdef") == "chrome-extension://abcdef"


def test_a_cors_origin_with_a_non_ascii_host_is_taken_as_its_a_label():
    """Review 12: `https://Bücher.example` was kept as `https://bücher.example`, but a browser's
    Origin carries the A-label (`xn--bcher-kva.example`), so that --cors never matched."""
    from streamchat.errors import UsageError
    from streamchat.serve.spec import cors_origin

    assert cors_origin("https://Bücher.example") == "https://xn--bcher-kva.example"
    assert cors_origin("http://Straße.example:8080/") == "http://xn--strae-oqa.example:8080"
    with pytest.raises(UsageError) as refused:
        cors_origin("https://\u2603.example")  # a snowman: no IDNA 2008 name
    assert "is not an origin" in str(refused.value) and "xn--" in (refused.value.hint or "")


def test_a_normalised_cors_origin_is_allowed(monkeypatch):
    """The app allows the origin as normalised (a browser sends `https://app.example`, never `…:443/`)."""
    import httpx

    from streamchat.serve.policy import OriginPolicy
    from streamchat.serve.spec import cors_origin

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    origin = cors_origin("https://App.Example:443/")
    app = _app(cors_origin=origin, origins=OriginPolicy.for_bind("127.0.0.1", cors_origin=origin))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as client:
            return await client.get("/v1/models", headers={"Origin": "https://app.example"})

    r = asyncio.run(go())
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
