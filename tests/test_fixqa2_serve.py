"""serve's QA-22..QA-26 fixes, in-process over ASGI: every method passes the Host check, `/ws` refusals
carry their status, empty content is a 400, `GET /stream` is checked as `POST /stream` is."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")

import httpx  # noqa: E402
from test_serve_policy import _app  # noqa: E402

from streamchat.serve.policy import OriginPolicy  # noqa: E402

TOKEN = "fixqa2-token-0123456789"
APP_ORIGIN = "http://localhost:3000"


async def _ask(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as client:
        return await client.request(method, path, **kwargs)


def ask(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return asyncio.run(_ask(app, method, path, **kwargs))


@pytest.mark.parametrize("cors", [None, APP_ORIGIN])
def test_options_requests_pass_the_host_check_and_never_redirect_to_a_foreign_host(cors):
    """QA-22: every OPTIONS skipped the gate, so a foreign Host was not 421 and a trailing slash
    answered 307 to `http://evil.example/...`; with --cors a preflight from that Host got CORS headers."""
    app = _app(token=TOKEN, cors_origin=cors, origins=OriginPolicy.for_bind("127.0.0.1", cors_origin=cors))
    evil = {"Host": "evil.example"}
    preflight = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
    for method in ("OPTIONS", "GET", "POST"):
        for path in ("/v1/chat/completions/", "/health/", "/stream/", "/stream", "/ws"):
            answer = ask(app, method, path, headers=evil)
            assert answer.status_code == 421, (method, path, answer.status_code, answer.headers)
            assert "evil.example" not in answer.headers.get("location", "")
    assert ask(app, "OPTIONS", "/stream", headers={**evil, **preflight}).status_code == 421
    assert ask(app, "OPTIONS", "/stream", headers={**preflight, "Origin": "http://evil.example"}).status_code == 403
    # a loopback Host: the token is still wanted on a plain OPTIONS, and the slash redirect stays on that Host
    assert ask(app, "OPTIONS", "/stream").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert ask(app, "OPTIONS", "/stream", headers=auth).status_code == 405
    moved = ask(app, "GET", "/health/", headers=auth)
    assert moved.status_code == 307 and moved.headers["location"].startswith("http://127.0.0.1:8765/")
    answer = ask(app, "OPTIONS", "/stream", headers=preflight)
    if cors:  # a browser's preflight carries no token: it is answered by CORS
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    else:  # no CORS: another origin's preflight is refused as its request would be
        assert answer.status_code == 403


def _handshake(app: Any, headers: dict[str, str], *, denial: bool = True) -> list[dict[str, Any]]:
    """A WebSocket handshake on `/ws` straight over ASGI: what the app sends before the client's first frame."""
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "ws", "path": "/ws",
             "raw_path": b"/ws", "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 8765), "subprotocols": [],
             "extensions": {"websocket.http.response": {}} if denial else {},
             "headers": [(k.encode(), v.encode()) for k, v in
                         {"host": "127.0.0.1:8765", **{k.lower(): v for k, v in headers.items()}}.items()]}
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "websocket.disconnect", "code": 1000}, {"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop() if inbox else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    return sent


def _denial(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any], dict[bytes, bytes]]:
    import json

    start = sent[0]
    assert start["type"] == "websocket.http.response.start", sent
    body = b"".join(m.get("body", b"") for m in sent[1:] if m["type"] == "websocket.http.response.body")
    return start["status"], json.loads(body), dict(start["headers"])


@pytest.mark.parametrize("keys", [False, True])
def test_websocket_refusals_carry_their_status_and_error(keys, tmp_path):
    """QA-26: a missing or wrong token or key and a foreign Host were all an empty 403 (`ws.close` before
    accept); README promises 401 `invalid_api_key` (`unauthorized` for the token) and 421."""
    options: dict[str, Any] = {"token": TOKEN}
    if keys:
        options.update(keys=True, state=str(tmp_path / "access.db"))
    app = _app(**options)
    code = "invalid_api_key" if keys else "unauthorized"
    for headers in ({}, {"Authorization": "Bearer wrong-wrong-wrong-wrong"}):
        status, body, sent_headers = _denial(_handshake(app, headers))
        assert (status, body["error"]["code"]) == (401, code)
        assert sent_headers[b"www-authenticate"] == b"Bearer"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body, _ = _denial(_handshake(app, {**auth, "Host": "evil.example"}))
    assert (status, body["error"]["code"]) == (421, "host_not_allowed")
    status, body, _ = _denial(_handshake(app, {**auth, "Origin": "http://evil.example"}))
    assert (status, body["error"]["code"]) == (403, "origin_not_allowed")
    assert _handshake(app, auth)[0]["type"] == "websocket.accept"
    # a server without the denial extension: closed before accept, as before (its own 403)
    assert _handshake(app, {}, denial=False)[0] == {"type": "websocket.close", "code": 1008, "reason": ""}


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": ""}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "messages[0].content"),
    ({"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "q"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "hello"}, {"role": "assistant"}, {"role": "user", "content": "again"}]},
     "messages[1].content"),
    ({"messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
                   {"role": "tool", "tool_call_id": "c1"}]}, "messages[2].content"),
])
def test_a_message_without_content_is_a_400_naming_it(body, param):
    """QA-23: a message with no content (missing, null, "", [], an empty text part) went upstream as an
    empty turn; OpenAI answers "Missing required parameter" and Anthropic refuses an empty text block."""
    from streamchat.serve.parse import parse_call
    from streamchat.serve.policy import Refused

    for openai in (True, False):
        if not openai and any(m.get("role") == "tool" for m in body["messages"]):
            continue
        with pytest.raises(Refused) as info:
            parse_call(body, openai=openai)
        assert (info.value.status, info.value.code, info.value.param) == (400, "invalid_request", param)
        assert param in info.value.message


def test_an_empty_prompt_is_a_400_and_content_that_is_there_still_passes():
    from streamchat.serve.parse import parse_call
    from streamchat.serve.policy import Refused

    with pytest.raises(Refused) as info:
        parse_call({"prompt": ""}, openai=False)
    assert (info.value.status, info.value.param) == (400, "prompt")
    image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    call = parse_call({"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]},  # an image alone is a question
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": ""},  # a tool may return nothing
    ], "tools": [{"type": "function", "function": {"name": "f"}}]}, openai=True)
    assert [m.role for m in call.messages] == ["user", "assistant", "tool"]
    assert ask(_app(), "GET", "/stream", params={"prompt": "", "model": "openai:gpt-4o-mini"}).json()["error"]["param"] \
        == "prompt"


def test_get_stream_refuses_what_post_stream_refuses():
    """QA-25: GET /stream ignored unknown and invalid query parameters and took the last of a repeated
    one, while POST /stream refuses each with a 400 naming it."""
    app = _app()
    for query, param, code in (
            ("prompt=hi&bogus=1", "bogus", "unsupported_parameter"),
            ("prompt=hi&temperature=5&max_tokens=-1", "temperature", "unsupported_parameter"),
            ("prompt=a&prompt=b", "prompt", "invalid_request"),
            ("prompt=hi&model=a&model=b", "model", "invalid_request"),
            ("prompt=hi&messages=x", "messages", "unsupported_parameter")):
        answer = ask(app, "GET", f"/stream?{query}")
        error = answer.json()["error"]
        assert (answer.status_code, error["param"], error["code"]) == (400, param, code), query
        assert f"'{param}'" in error["message"], error
    post = ask(app, "POST", "/stream", json={"prompt": "hi", "bogus": 1}).json()["error"]
    assert ask(app, "GET", "/stream?prompt=hi&bogus=1").json()["error"] == post  # the same words
    hint = ask(app, "GET", "/stream?prompt=hi&temperature=1").json()["error"]["message"]
    assert "POST /stream" in hint
