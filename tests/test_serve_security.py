"""serve probed as an attacker would: foreign origins and hosts, chosen models, tokens, malformed input,
and as an OpenAI client would: honest statuses and parameters. Each case failed before the fix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess

import httpx
import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script
from localhttp import Quiet, local_http
from servehelp import ServeProcess

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")

from test_serve import _serve as _serve  # noqa: E402 — the same serve process fixture
from test_serve import serve as serve  # noqa: E402


def upstream_calls(server) -> int:
    return len(server.requests)


# -- Host, Origin, content type --------------------------------------------------------------

def test_foreign_host_is_refused_loopback_names_served(serve, server):
    r = httpx.get(f"{serve.url}/v1/models", headers={"Host": f"rebind.evil.com:{serve.port}"})
    assert r.status_code == 421 and r.json()["error"]["code"] == "host_not_allowed"
    for name in ("127.0.0.1", "localhost", "[::1]"):
        assert httpx.get(f"{serve.url}/v1/models", headers={"Host": f"{name}:{serve.port}"}).status_code == 200


def test_cross_origin_post_and_simple_content_types_are_refused(serve, server):
    for headers in ({"Origin": "http://evil.com", "Content-Type": "application/json"},
                    {"Origin": "null", "Content-Type": "application/json"}):
        r = httpx.post(f"{serve.url}/stream", content=b'{"prompt": "x"}', headers=headers)
        assert r.status_code == 403, headers
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = httpx.post(f"{serve.url}/stream", content=b'{"prompt": "x"}', headers={"Content-Type": kind})
        assert r.status_code == 415, kind
    r = httpx.get(f"{serve.url}/stream", params={"prompt": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert upstream_calls(server) == 0
    same = httpx.post(f"{serve.url}/stream", json={"prompt": "x"}, headers={"Origin": serve.url})
    assert same.status_code == 200 and upstream_calls(server) == 1


def test_websocket_from_a_foreign_origin_is_refused(serve, server):
    import websockets
    import websockets.exceptions

    async def attempt(origin: str) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{serve.port}/ws", origin=origin) as ws:
            await ws.send(json.dumps({"prompt": "x"}))
            await ws.recv()

    with pytest.raises((websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed)):
        asyncio.run(attempt("http://evil.com"))
    assert upstream_calls(server) == 0
    asyncio.run(attempt(serve.url))  # the page's own origin works


# -- the page in Chromium, attacked from another origin ---------------------------------------

EVIL_PAGE = """<!doctype html><script>
window.results = {};
const target = "TARGET";
fetch(target + "/stream", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                           body: JSON.stringify({prompt: "csrf"})}).catch(() => {});
const ws = new WebSocket(target.replace("http", "ws") + "/ws");
ws.onopen = () => ws.send(JSON.stringify({prompt: "hijack"}));
ws.onmessage = (e) => { window.results.ws = e.data; };
ws.onclose = () => { window.results.closed = true; };
</script>"""


@pytest.fixture
def evil_origin(serve):
    class Handler(Quiet):
        def do_GET(self) -> None:  # noqa: N802
            self.reply(200, EVIL_PAGE.replace("TARGET", serve.url).encode(), "text/html")

    with local_http(Handler, host="localhost") as url:
        yield url


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
def test_chromium_page_on_another_origin_cannot_drive_the_server(serve, server, evil_origin):
    sync_api = pytest.importorskip("playwright.sync_api")
    from test_web_page import FLAGS

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=[*FLAGS, "--host-resolver-rules=MAP rebind.evil.test 127.0.0.1"])
        try:
            page = browser.new_page()
            page.goto(evil_origin + "/")
            page.wait_for_function("window.results.closed === true", timeout=15000)
            assert page.evaluate("window.results.ws") is None
            rebind = page.goto(f"http://rebind.evil.test:{serve.port}/v1/models")
            assert rebind is not None and rebind.status == 421
        finally:
            browser.close()
    assert upstream_calls(server) == 0


# -- which models a client may choose ---------------------------------------------------------

def test_clients_choose_only_offered_models(serve, server, home):
    for spec in ("local:/etc/passwd", f"local:{home}/missing.gguf", "local", "/etc/passwd.gguf"):
        r = httpx.post(f"{serve.url}/v1/chat/completions",
                       json={"model": spec, "messages": [{"role": "user", "content": "q"}]})
        assert r.status_code == 404, spec
        assert str(home) not in r.text and "GGUF" not in r.text
    r = httpx.post(f"{serve.url}/v1/chat/completions", json={"model": ["x"], "messages": [{"role": "user", "content": "q"}]})
    assert r.status_code == 400 and "'model' must be a string" in r.json()["error"]["message"]
    ids = [m["id"] for m in httpx.get(f"{serve.url}/v1/models").json()["data"]]
    assert ids[0] == "openai:echo" and not any(i.startswith("local:") for i in ids)
    assert httpx.get(f"{serve.url}/v1/models/openai:echo").json()["id"] == "openai:echo"
    assert httpx.get(f"{serve.url}/v1/models/local:smollm2").status_code == 404
    assert upstream_calls(server) == 0


# -- tokens ----------------------------------------------------------------------------------

TOKEN = "0123456789abcdef-token"


def test_query_token_only_opens_the_page_and_cors_headers_on_refusals(tmp_path, server):
    proc = ServeProcess(tmp_path, server, "-m", "openai:echo", "--cors", "http://app.example", token=TOKEN)
    try:
        assert httpx.get(f"{proc.url}/", params={"token": TOKEN}).status_code == 200
        assert httpx.get(f"{proc.url}/stream", params={"prompt": "x", "token": TOKEN}).status_code == 401
        refused = httpx.get(f"{proc.url}/v1/models", headers={"Origin": "http://app.example"})
        assert refused.status_code == 401
        assert refused.headers.get("access-control-allow-origin") == "http://app.example"
        for path, body in (("/stream", {"prompt": "x"}),
                           ("/v1/chat/completions", {"stream": True, "messages": [{"role": "user", "content": "x"}]})):
            # a streamed answer's body goes straight to the server; its headers still pass the CORS middleware
            streamed = httpx.post(f"{proc.url}{path}", json=body, headers={"Origin": "http://app.example",
                                                                           "Authorization": f"Bearer {TOKEN}"})
            assert streamed.status_code == 200 and "echo" in streamed.text, path
            assert "event: done" in streamed.text or streamed.text.endswith("data: [DONE]\n\n"), path
            assert streamed.headers.get("access-control-allow-origin") == "http://app.example", path
            assert streamed.headers["content-type"] == "text/event-stream; charset=utf-8", path
        page = httpx.get(f"{proc.url}/", params={"token": TOKEN})
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self';" in page.headers["content-security-policy"]  # no inline script runs
        for script in ("page.js", "vendor/markdown-it.min.js", "vendor/purify.min.js"):  # the page's, fetched without the token
            assert f'src="/static/{script}"' in page.text
            assert httpx.get(f"{proc.url}/static/{script}").status_code == 200
        assert httpx.get(f"{proc.url}/static/page.js", headers={"Host": "evil.com"}).status_code == 421  # the rest still applies
    finally:
        proc.stop()
    assert TOKEN not in proc.proc.stderr.read().decode()


@pytest.mark.parametrize("token", ["x", "  padded-token-0123456789  ", "short-token"])
def test_weak_tokens_are_refused_off_loopback(home, server, token):
    p = subprocess.run([STREAMCHAT, "serve", "--host", "0.0.0.0", "-m", "openai:echo"],
                       env=base_env(home, server, STREAMCHAT_TOKEN=token), capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "at least 16 characters" in p.stderr and "Traceback" not in p.stderr


def test_debug_access_log_never_shows_the_token(tmp_path, server):
    proc = ServeProcess(tmp_path, server, "-m", "openai:echo", "--debug", token=TOKEN)
    try:
        httpx.get(f"{proc.url}/", params={"token": TOKEN})
        httpx.get(f"{proc.url}/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        proc.stop()
    log = proc.proc.stderr.read().decode()
    assert "GET /" in log and TOKEN not in log


def test_a_client_leaving_mid_body_is_one_log_line(tmp_path, server):
    """Starlette raises ClientDisconnect when the body stops with the connection; uvicorn logged it as
    a 65-line traceback for each such client (#35.17)."""
    proc = ServeProcess(tmp_path, server, "-m", "openai:echo")
    try:
        for path in ("/v1/chat/completions", "/stream"):
            with socket.create_connection(("127.0.0.1", proc.port)) as sock:
                sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             f"Content-Length: 1000\r\n\r\n{{\"messages\": [".encode())
        assert httpx.get(f"{proc.url}/stream", params={"prompt": "hi"}, timeout=30).status_code == 200
    finally:
        proc.stop()
    lines = [line for line in proc.proc.stderr.read().decode().splitlines() if not line.startswith("streamchat serving")]
    assert len(lines) == 2 and all("left before sending its whole request body" in line for line in lines), lines
    assert sorted(line.rsplit(" ", 1)[-1] for line in lines) == ["/stream)", "/v1/chat/completions)"]


# -- malformed input is a 400 with an OpenAI error object -------------------------------------

BAD_BODIES = [
    {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    {"messages": [{"role": "user", "content": "q"}], "stream_options": "x"},
    {"messages": [{"role": "user", "content": "q"}], "stream": "false"},
    {"messages": [{"role": "user", "content": "q"}], "n": 2},
    {"messages": [{"role": "user", "content": "q"}], "logprobs": True},
    {"messages": [{"role": "user", "content": "q"}],
     "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "strin"}}}},
    {"messages": [{"role": "user", "content": "q"}], "temperature": 7},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
    {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_malformed_openai_requests_are_400(serve, server, body):
    r = httpx.post(f"{serve.url}/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] and r.json()["error"]["type"] == "invalid_request_error"
    assert upstream_calls(server) == 0


@pytest.mark.parametrize("raw", [b'{"messages": [{"role": "user", "content": "\xff"}]}',
                                 b'{"prompt": "q", "temperature": NaN}',
                                 b"[" * 5000 + b"]" * 5000,
                                 b'{"prompt": "q", "x": ' + b'{"a": ' * 40 + b"1" + b"}" * 41])
def test_malformed_json_is_400(serve, server, raw):
    r = httpx.post(f"{serve.url}/stream", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_framework_errors_have_the_openai_shape(serve):
    missing = httpx.get(f"{serve.url}/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    invalid = httpx.get(f"{serve.url}/stream")  # no prompt
    assert invalid.status_code == 400 and "prompt" in invalid.json()["error"]["message"]


def test_chunked_body_over_the_limit_is_refused_while_reading(serve):
    def body():
        for _ in range(40):
            yield b" " * 65536

    r = httpx.post(f"{serve.url}/stream", content=body(), headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413


# -- honest OpenAI compatibility -------------------------------------------------------------

def test_streaming_errors_before_the_first_token_carry_their_status(serve, server):
    from streamchat.providers._sdk import import_sdk

    openai = import_sdk("openai")

    server.script("limited", Script(status=429))
    client = openai.OpenAI(base_url=f"{serve.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="openai:limited", messages=[{"role": "user", "content": "q"}], stream=True)


def test_sampling_parameters_reach_upstream_mapped_per_provider(serve, server):
    from streamchat.providers._sdk import import_sdk

    openai = import_sdk("openai")

    client = openai.OpenAI(base_url=f"{serve.url}/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(model="openai:echo", messages=[{"role": "user", "content": "q"}],
                                   stop=["END"], top_p=0.5, seed=7, presence_penalty=0.1)
    body = server.requests[-1].body
    assert body["stop"] == ["END"] and body["top_p"] == 0.5 and body["seed"] == 7 and body["presence_penalty"] == 0.1
    client.chat.completions.create(model="anthropic:echo", messages=[{"role": "user", "content": "q"}],
                                   stop="END", top_p=0.5)
    body = server.requests[-1].body
    assert body["stop_sequences"] == ["END"] and body["top_p"] == 0.5
    with pytest.raises(openai.BadRequestError, match="seed"):
        client.chat.completions.create(model="anthropic:echo", messages=[{"role": "user", "content": "q"}], seed=1)


# -- WebSocket --------------------------------------------------------------------------------

def test_websocket_busy_and_bad_frames_keep_the_socket(serve, server):
    import websockets

    server.script("slow", Script(chunks=[f"t{i} " for i in range(200)], delay=0.02))

    async def scenario() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{serve.port}/ws") as ws:
            await ws.send("not json")
            assert json.loads(await ws.recv())["code"] == "invalid_json"
            await ws.send(b"\x00\x01")
            assert json.loads(await ws.recv())["code"] == "invalid_json"
            await ws.send(json.dumps({"prompt": "long", "model": "openai:slow"}))
            assert json.loads(await ws.recv())["type"] == "token"
            await ws.send(json.dumps({"prompt": "second"}))
            while (frame := json.loads(await ws.recv()))["type"] == "token":
                pass
            assert frame["code"] == "busy"
            await ws.send(json.dumps({"type": "cancel"}))
            while (frame := json.loads(await ws.recv()))["type"] == "token":
                pass
            assert frame["type"] == "done" and frame["finish_reason"] == "cancelled"
            await ws.send(json.dumps({"prompt": "again"}))
            frames = []
            while not frames or frames[-1]["type"] not in ("done", "error"):
                frames.append(json.loads(await ws.recv()))
            assert "".join(f.get("text", "") for f in frames) == "echo: again"

    asyncio.run(scenario())


def test_disconnects_close_every_upstream_stream(serve, server):
    server.script("slow", Script(chunks=[f"t{i} " for i in range(500)], delay=0.01))
    payload = b'{"model": "openai:slow", "stream": true, "messages": [{"role": "user", "content": "q"}]}'
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", serve.port)) as sock:
            sock.sendall(request)
            assert b"200 OK" in sock.recv(4096)  # headers and the first chunks, then the client leaves
    assert asyncio.run(_disconnects(server, 5)) == 5
    assert server.completed == 0


async def _disconnects(server, expected: int) -> int:
    for _ in range(40):  # 2 s
        if len(server.disconnects) >= expected:
            break
        await asyncio.sleep(0.05)
    return len(server.disconnects)


def _threads(pid: int) -> int:
    import os

    return len(os.listdir(f"/proc/{pid}/task"))


def test_disconnect_during_an_upstream_stall_frees_the_worker_at_once(serve, server):
    server.script("stuck", Script(chunks=["first ", "never"], fault="stall", fault_after=1))
    server.script("warm", Script(chunks=["ok"]))
    # a first answer, so the pooled threads a process starts once (the SDK asks for the platform in
    # the loop's default executor on its first request) are counted before, not taken for a leak
    httpx.get(f"{serve.url}/stream", params={"prompt": "x", "model": "openai:warm"}, timeout=30)
    before = _threads(serve.proc.pid)
    with httpx.stream("GET", f"{serve.url}/stream", params={"prompt": "x", "model": "openai:stuck"}, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break
    assert server.wait_disconnect(1.0), "the stalled upstream was kept open"
    for _ in range(40):
        if _threads(serve.proc.pid) <= before:
            break
        import time

        time.sleep(0.05)
    assert _threads(serve.proc.pid) <= before, "a worker thread outlived its request"


def test_slow_headers_are_cut_off(serve):
    import time

    from streamchat.serve.protocol import HEADER_TIMEOUT_S

    with socket.create_connection(("127.0.0.1", serve.port)) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(HEADER_TIMEOUT_S + 5)
        started = time.monotonic()
        while time.monotonic() - started < HEADER_TIMEOUT_S + 4:
            try:
                sock.sendall(b"X")  # a byte at a time never completes the headers
                sock.settimeout(1.0)
                if sock.recv(1024) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 4, "the slow client was never cut off"
    assert httpx.get(f"{serve.url}/v1/models").status_code == 200


def test_oversized_headers_are_refused_while_they_arrive(serve):
    """uvicorn's C parser (llhttp) sets no bound on header size: a client could send headers
    without end into the server's memory. serve answers 431 once MAX_HEADER_BYTES arrived without
    the headers completing, and closes the connection (h11's bound answered 400)."""
    from streamchat.serve.protocol import MAX_HEADER_BYTES

    with socket.create_connection(("127.0.0.1", serve.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        reply = b""
        try:
            for _ in range(MAX_HEADER_BYTES // 4096 + 1):  # just over the bound, all of it read by then
                sock.sendall(b"X-Fill: " + b"a" * 4086 + b"\r\n")
        except OSError:  # the server closed while we were still sending
            pass
        with contextlib.suppress(OSError):
            while chunk := sock.recv(4096):
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:80]
    assert httpx.get(f"{serve.url}/v1/models").status_code == 200


def test_idle_websockets_are_closed_and_capped_per_address(tmp_path, server):
    """1,000 idle WebSockets from one address held every connection slot, so every other client got 503
    (#35.18). Now each address may hold `--ws-per-client` sockets, and one that sends nothing while no
    answer streams is closed after `--ws-idle-timeout` — an answer longer than that is not cut."""
    import websockets
    import websockets.exceptions

    server.script("slow", Script(chunks=[f"t{i} " for i in range(12)], delay=0.25))  # ~3 s, longer than the timeout
    proc = ServeProcess(tmp_path, server, "-m", "openai:echo", "--allow-model", "openai:slow",
                        "--ws-idle-timeout", "1", "--ws-per-client", "2")
    url = f"ws://127.0.0.1:{proc.port}/ws"

    async def closed_with(ws) -> tuple[int, str]:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 30)
        return info.value.rcvd.code, info.value.rcvd.reason

    async def scenario() -> None:
        async with websockets.connect(url) as idle, websockets.connect(url) as busy:
            async with websockets.connect(url) as third:
                code, reason = await closed_with(third)
                assert code == 1013 and "more than 2 WebSockets" in reason
            await busy.send(json.dumps({"prompt": "long", "model": "openai:slow"}))
            assert await closed_with(idle) == (1000, "idle for 1 s")
            frames = [json.loads(await asyncio.wait_for(busy.recv(), 30))]
            while frames[-1]["type"] not in ("done", "error"):
                frames.append(json.loads(await asyncio.wait_for(busy.recv(), 30)))
            assert frames[-1]["type"] == "done" and frames[-1]["finish_reason"] == "stop"
            assert (await closed_with(busy))[0] == 1000  # idle again once the answer is done
            async with websockets.connect(url) as again:  # the slots are free
                await again.send(json.dumps({"prompt": "hi"}))
                assert json.loads(await again.recv())["type"] == "token"

    try:
        asyncio.run(scenario())
    finally:
        proc.stop()


def test_websocket_floods_and_oversized_frames_close_the_socket(serve, server):
    import websockets
    import websockets.exceptions

    async def flood() -> int | None:
        async with websockets.connect(f"ws://127.0.0.1:{serve.port}/ws") as ws:
            try:
                for _ in range(1000):
                    await ws.send("{}")
                while True:
                    await ws.recv()
            except websockets.exceptions.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    async def oversized() -> int | None:
        async with websockets.connect(f"ws://127.0.0.1:{serve.port}/ws", max_size=None) as ws:
            try:
                await ws.send(json.dumps({"prompt": "x" * (2 * 1024 * 1024)}))
                await ws.recv()
            except websockets.exceptions.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    assert asyncio.run(flood()) == 1008
    assert asyncio.run(oversized()) == 1009
    assert upstream_calls(server) == 0


def test_gateway_carries_images_across_providers_and_refuses_remote_urls(serve, server):
    import base64

    from streamchat.providers._sdk import import_sdk

    openai = import_sdk("openai")
    from test_context_inputs import png_bytes

    client = openai.OpenAI(base_url=f"{serve.url}/v1", api_key="unused", max_retries=0)
    png64 = base64.b64encode(png_bytes()).decode()
    parts = [{"type": "text", "text": "what is it"},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png64}"}}]
    done = client.chat.completions.create(model="anthropic:echo", messages=[{"role": "user", "content": parts}])
    assert done.choices[0].message.content
    sent = [{k: v for k, v in block.items() if k != "cache_control"} for block in server.last_messages()[-1]["content"]]
    assert sent == [  # the image is large enough for a prompt-cache breakpoint: not what this test is about
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png64}},
        {"type": "text", "text": "what is it"}]
    with pytest.raises(openai.BadRequestError, match="data: URL"):
        client.chat.completions.create(model="openai:echo", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data"}}]}])
