"""The lean transport (providers/_http.py) against the SDKs it stands in for.

The official SDKs are the reference: for the same ChatRequest, each path's request is captured at
the fake server and compared (path, the headers that matter, the JSON body), and each path's
faults map to the same streamchat errors. Which path a provider takes is one rule (`path_for`).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import base_env
from fakeserver import FakeLLMServer, Script
from import_probe import imported_by

from streamchat.config import ProviderConfig
from streamchat.errors import StreamchatError
from streamchat.events import Attachment, Message, ToolSpec
from streamchat.providers._http import TRANSPORT_VAR, path_for
from streamchat.providers.base import ChatRequest
from streamchat.schema_request import ResponseSchema

# The headers a server reads; the SDKs' own telemetry (X-Stainless-*, User-Agent) is left out.
HEADERS = ("authorization", "x-api-key", "anthropic-version", "content-type", "accept", "openai-organization",
           "openai-project")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\0" * 16
WEATHER = ToolSpec("weather", "the weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}})
SCHEMA = ResponseSchema({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})

REQUESTS = {
    "plain": ChatRequest("echo", (Message("user", "hi"),)),
    "options": ChatRequest("echo", (Message("system", "be brief"), Message("user", "héllo ✓")), temperature=0.3,
                           max_tokens=50, params=(("top_p", 0.5), ("stop", ["END"]))),
    "tools": ChatRequest("echo", (Message("user", "weather in Paris?"),), tools=(WEATHER,)),
    "schema": ChatRequest("echo", (Message("user", "a name"),), schema=SCHEMA),
    "image": ChatRequest("echo", (Message("user", "what is it?", attachments=(Attachment("a.png", "image/png", PNG),)),)),
}


def provider(kind: str, url: str, transport: str, monkeypatch: pytest.MonkeyPatch, timeout: float = 60.0):
    """A fresh adapter (not the process's cached one) on the given path."""
    from streamchat.providers.anthropic import AnthropicProvider
    from streamchat.providers.openai import OpenAIProvider

    monkeypatch.setenv(TRANSPORT_VAR, transport)
    config = ProviderConfig(kind, kind, base_url=url + ("/v1" if kind == "openai" else ""), api_key="sk-test-key-0001")
    adapter = (OpenAIProvider if kind == "openai" else AnthropicProvider)(config, timeout=timeout)
    assert (adapter._lean is not None) == (transport == "lean")
    return adapter


def answer(adapter, request: ChatRequest) -> list:
    return list(adapter.stream(request))


@pytest.mark.parametrize("name", list(REQUESTS))
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_lean_request_is_the_sdks(server, monkeypatch, kind, name):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-1")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "tok-1")
    sent = {}
    for transport in ("sdk", "lean"):
        events = answer(provider(kind, server.url, transport, monkeypatch), REQUESTS[name])
        record = server.requests[-1]
        sent[transport] = (record.path, {h: record.headers.get(h) for h in HEADERS}, record.body, events)
    assert sent["lean"] == sent["sdk"]  # the JSON body as parsed: anthropic's SDK moves a few keys first
    assert sent["lean"][1]["authorization"] is not None  # the variables the SDKs read were sent


def fault(kind: str, url: str, transport: str, monkeypatch, request: ChatRequest, timeout: float = 60.0):
    """(the mapped error, and whether events came before it) of one answer on one path."""
    adapter = provider(kind, url, transport, monkeypatch, timeout)
    started = False
    try:
        for _event in adapter.stream(request):
            started = True
    except Exception as exc:  # what session.py hands map_error
        err = adapter.map_error(exc, model=request.model, started=started)
        return type(err), str(err), err.exit_code, err.retry_after, started
    raise AssertionError("no fault")


HTTP_FAULTS = [
    Script(status=401, error_message="Incorrect API key provided"),
    Script(status=403),
    Script(status=404),
    Script(status=400, error_type="context_length_exceeded", error_message="maximum context length is 8192 tokens"),
    Script(status=400, error_type="invalid_request_error", error_message="prompt is too long: 9000 tokens > 8192 maximum"),
    Script(status=429, headers={"Retry-After": "7"}),
    Script(status=500),
    Script(status=529, error_type="overloaded_error", error_message="Overloaded"),
    Script(chunks=["a ", "b "], fault="drop", fault_after=1),
    Script(chunks=["a ", "b "], fault="malformed", fault_after=1),
    Script(chunks=["a ", "b "], fault="error_event", fault_after=1, error_type="overloaded_error"),
    Script(chunks=["a ", "b "], fault="no_done", fault_after=1),
]


@pytest.mark.parametrize("script", HTTP_FAULTS, ids=lambda s: f"{s.status}-{s.fault or s.error_type}")
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_each_fault_maps_to_the_same_error_on_both_paths(server, monkeypatch, kind, script):
    server.script("m", script)
    request = ChatRequest("m", (Message("user", "q"),))
    sdk = fault(kind, server.url, "sdk", monkeypatch, request)
    lean = fault(kind, server.url, "lean", monkeypatch, request)
    assert lean == sdk
    assert issubclass(lean[0], StreamchatError)


def _refused_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_refused_unresolved_and_timeouts_map_the_same(server, monkeypatch, kind):
    request = ChatRequest("m", (Message("user", "q"),))
    for url in (_refused_url(), "http://no-such-host.invalid"):
        assert fault(kind, url, "lean", monkeypatch, request) == fault(kind, url, "sdk", monkeypatch, request)
    server.script("m", Script(first_delay=5))  # no status line within the timeout
    assert fault(kind, server.url, "lean", monkeypatch, request, 0.5) == fault(kind, server.url, "sdk", monkeypatch, request, 0.5)
    server.script("m", Script(chunks=["a ", "b "], fault="stall", fault_after=1))  # a stream stalled mid-answer
    lean = fault(kind, server.url, "lean", monkeypatch, request, 0.5)
    assert lean == fault(kind, server.url, "sdk", monkeypatch, request, 0.5)
    assert "stalled mid-answer" in lean[1]


def test_the_schema_fallback_resends_on_the_lean_path(server, monkeypatch):
    """A compatible server that refuses response_format: the lean path's status error drives the
    adapter's one fallback (a forced tool), as the SDK's does."""
    adapter = provider("openai", server.url, "lean", monkeypatch)
    events = answer(adapter, ChatRequest("echo", (Message("user", "[schema:no-response-format] a name"),), schema=SCHEMA))
    assert adapter.schema_by_tool and len(server.requests) == 2
    assert "tools" in server.requests[-1].body and events


def test_a_kept_alive_connection_serves_the_next_turn(server, monkeypatch):
    server.script("k", Script(chunks=["one"], keep_alive=True))
    adapter = provider("openai", server.url, "lean", monkeypatch)
    for _ in range(3):
        assert [e.text for e in answer(adapter, ChatRequest("k", (Message("user", "q"),))) if hasattr(e, "text")] == ["one"]
    assert server.connections == 1


def test_a_pooled_connection_the_server_closed_is_replaced(server, monkeypatch):
    server.script("k", Script(chunks=["one"], keep_alive=True))
    adapter = provider("anthropic", server.url, "lean", monkeypatch)
    answer(adapter, ChatRequest("k", (Message("user", "q"),)))
    for conn in adapter._lean._idle:  # as a server's idle timeout does
        conn.sock.shutdown(2)
    answer(adapter, ChatRequest("k", (Message("user", "q"),)))
    assert len(server.requests) == 2


def test_one_rule_picks_the_path(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", TRANSPORT_VAR):
        monkeypatch.delenv(name, raising=False)
    plain = ProviderConfig("o", "openai", base_url="http://127.0.0.1:9/v1")
    assert path_for(plain) == "lean"
    assert path_for(ProviderConfig("a", "anthropic")) == "lean"
    assert path_for(plain, asyncio=True) == "lean-async"  # serve's clients (httptools is serve's)
    assert path_for(ProviderConfig("l", "local")) == "sdk"
    assert path_for(ProviderConfig("o", "openai", base_url="https://user:pw@example.test/v1")) == "sdk"
    assert path_for(ProviderConfig("o", "openai", base_url="https://example.test/v1?api-version=1")) == "sdk"
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    assert path_for(plain) == "sdk"
    monkeypatch.delenv("https_proxy")
    monkeypatch.setenv(TRANSPORT_VAR, "sdk")
    assert path_for(plain) == "sdk"




@pytest.mark.e2e
@pytest.mark.parametrize("provider_name", ["openai", "anthropic", "compat"])
def test_a_one_shot_imports_no_sdk(home, server, provider_name):
    """A one-shot with options of every kind sends its request without importing an SDK, pydantic
    (Typer's conversion), httpx2, the certificate bundle or asyncio; the price database is loaded
    at the answer's end only where a price can exist (not for a self-hosted server's model)."""
    server.script("gpt-4o-mini", chunks=["fine"])
    started = time.monotonic()
    heavy = ("openai", "anthropic", "httpx2", "pydantic", "certifi", "genai_prices", "asyncio", "aiohttp")
    imported, p = imported_by(["-m", f"{provider_name}:gpt-4o-mini", "--temperature", "0.5", "--max-tokens", "40",
                               "-o", "top_p=0.9", "--reasoning", "off", "hi"], heavy, env=base_env(home, server))
    assert p.stdout == "fine\n", p.stderr
    assert imported <= ({"genai_prices", "pydantic", "httpx2", "asyncio"} if provider_name != "compat" else set())
    assert time.monotonic() - started < 60



# -- the asyncio lean path (serve) against the SDK's asyncio client -------------------------------

def aprovider(kind: str, url: str, transport: str, monkeypatch: pytest.MonkeyPatch, timeout: float = 60.0):
    """An adapter as serve builds it (the asyncio transport chosen), on the given path."""
    from streamchat.providers import _sdk

    monkeypatch.setattr(_sdk, "_async_transport", True)
    adapter = provider(kind, url, transport, monkeypatch, timeout) if transport == "sdk" else None
    if adapter is None:
        from streamchat.providers.anthropic import AnthropicProvider
        from streamchat.providers.openai import OpenAIProvider

        monkeypatch.setenv(TRANSPORT_VAR, "")
        config = ProviderConfig(kind, kind, base_url=url + ("/v1" if kind == "openai" else ""), api_key="sk-test-key-0001")
        adapter = (OpenAIProvider if kind == "openai" else AnthropicProvider)(config, timeout=timeout)
    assert (adapter._alean is not None) == (transport == "lean")
    return adapter


def aanswer(adapter, request: ChatRequest, times: int = 1) -> list:
    """The answer's events, each run of text deltas as one: the asyncio paths join the deltas of one
    read, and where a read ends is the network's doing, not the path's."""
    import asyncio

    from streamchat.providers._wire import joined

    async def run() -> list:
        try:
            for _ in range(times):
                events = [e async for e in adapter.astream(request)]
            return joined(events)
        finally:
            await adapter.aclose()

    return asyncio.run(run())


def afault(kind: str, url: str, transport: str, monkeypatch, request: ChatRequest, timeout: float = 60.0):
    import asyncio

    adapter = aprovider(kind, url, transport, monkeypatch, timeout)
    started = False

    async def run() -> None:
        nonlocal started
        try:
            async for _event in adapter.astream(request):
                started = True
        finally:
            await adapter.aclose()

    try:
        asyncio.run(run())
    except Exception as exc:  # what session.run_turn_async hands map_error
        err = adapter.map_error(exc, model=request.model, started=started)
        return type(err), str(err), err.exit_code, err.retry_after, started
    raise AssertionError("no fault")


@pytest.mark.parametrize("name", list(REQUESTS))
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_async_lean_request_is_the_sdks(server, monkeypatch, kind, name):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-1")
    sent = {}
    for transport in ("sdk", "lean"):
        events = aanswer(aprovider(kind, server.url, transport, monkeypatch), REQUESTS[name])
        record = server.requests[-1]
        sent[transport] = (record.path, {h: record.headers.get(h) for h in HEADERS}, record.body, events)
    assert sent["lean"] == sent["sdk"]
    assert sent["lean"][1]["authorization"] is not None


@pytest.mark.parametrize("script", HTTP_FAULTS, ids=lambda s: f"{s.status}-{s.fault or s.error_type}")
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_each_fault_maps_to_the_same_error_on_both_async_paths(server, monkeypatch, kind, script):
    server.script("m", script)
    request = ChatRequest("m", (Message("user", "q"),))
    assert afault(kind, server.url, "lean", monkeypatch, request) == afault(kind, server.url, "sdk", monkeypatch, request)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_async_refused_unresolved_and_timeouts_map_the_same(server, monkeypatch, kind):
    request = ChatRequest("m", (Message("user", "q"),))
    refused = _refused_url()
    assert afault(kind, refused, "lean", monkeypatch, request) == afault(kind, refused, "sdk", monkeypatch, request)
    # an unknown host: the SDK's aiohttp transport raises it as a connect timeout ("no response … within
    # the timeout"); the lean path says what its blocking path and the SDK's blocking client say
    unresolved = "http://no-such-host.invalid"
    lean = afault(kind, unresolved, "lean", monkeypatch, request)
    assert lean == fault(kind, unresolved, "sdk", monkeypatch, request) and "cannot resolve" in lean[1]
    server.script("m", Script(first_delay=5))  # no status line within the timeout
    assert (afault(kind, server.url, "lean", monkeypatch, request, 0.5)
            == afault(kind, server.url, "sdk", monkeypatch, request, 0.5))
    server.script("m", Script(chunks=["a ", "b "], fault="stall", fault_after=1))  # a stream stalled mid-answer
    lean = afault(kind, server.url, "lean", monkeypatch, request, 0.5)
    assert lean == afault(kind, server.url, "sdk", monkeypatch, request, 0.5)
    assert "stalled mid-answer" in lean[1]


def test_the_async_lean_path_keeps_its_connection_and_replaces_a_closed_one(server, monkeypatch):
    import asyncio

    server.script("k", Script(chunks=["one"], keep_alive=True))
    adapter = aprovider("openai", server.url, "lean", monkeypatch)
    request = ChatRequest("k", (Message("user", "q"),))
    assert [e.text for e in aanswer(adapter, request, times=3) if hasattr(e, "text")] == ["one"]
    assert server.connections == 1

    async def closed_while_idle() -> list:
        try:
            [e async for e in adapter.astream(request)]
            for conn in adapter._alean._idle:  # as a server's idle timeout does
                conn.transport.get_extra_info("socket").shutdown(2)
            await asyncio.sleep(0.1)
            return [e async for e in adapter.astream(request)]
        finally:
            await adapter.aclose()

    assert [e.text for e in asyncio.run(closed_while_idle()) if hasattr(e, "text")] == ["one"]
    assert len(server.requests) == 5


@pytest.mark.parametrize("serve", [False, True], ids=["blocking", "serve"])
def test_tls_errors_map_the_same(tmp_path, monkeypatch, serve):
    """A certificate nobody trusts is the SDK's "TLS error" on the lean path, blocking and serve's
    asyncio one (compared with the SDK's blocking client: its aiohttp one says a connect timeout);
    once trusted through SSL_CERT_FILE, as httpx2 trusts it, the answer comes."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    srv = FakeLLMServer(tls=(str(cert), str(key))).start()
    try:
        request = ChatRequest("echo", (Message("user", "q"),))
        lean = (afault if serve else fault)("openai", srv.url, "lean", monkeypatch, request)
        assert lean == fault("openai", srv.url, "sdk", monkeypatch, request)
        assert "TLS error" in lean[1]
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusted = srv.url.replace("127.0.0.1", "localhost")
        events = (aanswer(aprovider("openai", trusted, "lean", monkeypatch), request) if serve
                  else answer(provider("openai", trusted, "lean", monkeypatch), request))
        assert events
    finally:
        srv.stop()


class Redirector(BaseHTTPRequestHandler):
    """Answers /CASE/REST with a redirect: `cross` 307 to the fake server (another origin), `relative`
    308 to /cross/REST on itself, `loop` 307 to itself, `see` 303 and `moved` 301 to the fake server."""

    fake = ""
    seen: list[tuple[str, str, str | None, bytes]] = []

    def do_POST(self) -> None:
        self._redirect()

    def do_GET(self) -> None:
        self._redirect()

    def _redirect(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        Redirector.seen.append((self.command, self.path, self.headers.get("authorization"), body))
        case, _, rest = self.path[1:].partition("/")
        status, location = {"cross": (307, f"{self.fake}/{rest}"), "relative": (308, f"/cross/{rest}"),
                            "loop": (307, self.path), "see": (303, f"{self.fake}/{rest}"),
                            "moved": (301, f"{self.fake}/{rest}")}[case]
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def redirector(_server_instance):
    Redirector.fake = _server_instance.url
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize("case", ["cross", "relative", "loop", "see", "moved"])
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("serve", [False, True], ids=["blocking", "serve"])
def test_redirects_are_followed_as_the_sdk_follows_them(server, redirector, monkeypatch, kind, case, serve):
    """The SDKs' httpx2 follows 301/302/303/307/308 (a 307 or 308 sends the POST again, the others
    a GET), drops the key for another origin and stops at the 21st: the lean transports, blocking
    and then serve's asyncio one, answered the first redirect as an error ("HTTP 307", exit 4).
    Each path's requests, answer or error are the same."""
    request = ChatRequest("echo", (Message("user", "hi"),))
    outcome = {}
    for transport in ("sdk", "lean"):
        Redirector.seen.clear()
        server.reset()
        adapter = (aprovider if serve else provider)(kind, f"{redirector}/{case}", transport, monkeypatch)
        try:
            result: tuple = ("answer", aanswer(adapter, request) if serve else answer(adapter, request))
        except Exception as exc:
            err = adapter.map_error(exc, model="echo", started=False)
            result = ("error", type(err), str(err), err.exit_code)
        at_fake = [(r.path, r.headers.get("authorization"), r.body) for r in server.requests]
        outcome[transport] = (result, list(Redirector.seen), at_fake)
    assert outcome["lean"] == outcome["sdk"]
    result, seen, at_fake = outcome["lean"]
    if case in ("cross", "relative"):
        assert result[0] == "answer" and len(at_fake) == 1 and at_fake[0][1] is None  # no key to another origin
        assert all(auth == "Bearer sk-test-key-0001" for _m, _p, auth, _b in seen)  # kept on the same origin
    if case == "loop":
        assert len(seen) == 21 and "TooManyRedirects" in result[2]


def _raw_upstream(head: bytes) -> tuple[str, threading.Event]:
    """A server that answers any request with `head` and then neither ends nor closes until told."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)
            with contextlib.suppress(OSError):
                conn.sendall(head)
            done.wait(30)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1/chat/completions", done


@pytest.mark.parametrize("case", ["endless", "many"])
def test_the_async_reader_caps_a_response_head(case):
    """An upstream that sends a header without end, or hundreds of headers, is a dropped stream as
    soon as the cap is passed (http.client's limits do this on the blocking path): before, serve kept
    every byte of it in memory, and each arriving byte put the read timeout off again."""
    import asyncio

    from streamchat.providers._ahttp import AsyncHttpTransport
    from streamchat.providers._http import StreamDropped

    head = b"HTTP/1.1 200 OK\r\n" + (b"X-Big: " + b"x" * (4 << 20) if case == "endless"
                                     else b"".join(b"X-%d: v\r\n" % i for i in range(200)))
    url, done = _raw_upstream(head)

    async def post() -> None:
        transport = AsyncHttpTransport(url, {"Authorization": "Bearer sk-test-key-0001"}, timeout=30.0)
        try:
            await asyncio.wait_for(transport.post(b"{}"), 20)
        finally:
            await transport.aclose()

    try:
        with pytest.raises(StreamDropped, match="exceed 256 KiB" if case == "endless" else "more than 100 headers"):
            asyncio.run(post())
    finally:
        done.set()


@pytest.mark.parametrize("serve", [False, True], ids=["blocking", "serve"])
def test_a_key_holding_a_line_break_is_a_config_error(server, monkeypatch, serve):
    """A key with a line break in it was sent by serve's asyncio transport as a header of its own
    (`X-Injected: 1` here), and refused by http.client as an "unexpected error" (exit 1): on both
    lean paths it is now a config error naming the provider, the key shown nowhere."""
    from streamchat.providers import _sdk
    from streamchat.providers.openai import OpenAIProvider

    monkeypatch.setenv(TRANSPORT_VAR, "")
    monkeypatch.setattr(_sdk, "_async_transport", serve)
    config = ProviderConfig("openai", "openai", base_url=server.url + "/v1", api_key="sk-line-1234567\r\nX-Injected: 1")
    with pytest.raises(StreamchatError) as caught:
        OpenAIProvider(config, timeout=5.0)
    assert caught.value.exit_code == 3 and "line break" in str(caught.value) and "sk-line" not in str(caught.value)
    assert not server.requests
