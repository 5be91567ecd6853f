"""What the two official SDK adapters share: the transport (the lean one, or the SDK's), client
construction and exception mapping by type.

The openai and anthropic SDKs are generated from the same template, so their exception
classes have the same names and attributes; each adapter passes its own SDK module, and
this maps its types (never class-name strings) onto the shared status → error table. The
lean transport (`_http.py`) raises errors with the same attributes, read by the same code.
The SDK is imported only when a provider takes its path (`_http.path_for`) or needs it
(serve's asyncio client, `list_models`).
"""

from __future__ import annotations

import codecs
import contextlib
import importlib
import socket
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from streamchat.cancel import bounded, closing_on_cancel
from streamchat.config import ProviderConfig
from streamchat.errors import ConfigError, ProtocolError, StreamchatError, from_status, map_transport, retry_after, timed_out, unexpected
from streamchat.events import Event
from streamchat.providers._http import WIRES, HttpResponse, HttpStatusError, HttpTransport, path_for, wire_json
from streamchat.providers._schema import refused_schema
from streamchat.providers._wire import Reader, WireParser, aevents, events, joined
from streamchat.providers.base import ChatRequest, EventStream

if TYPE_CHECKING:
    from streamchat.providers._ahttp import AsyncHttpTransport

DRAIN_S = 0.5  # how long the end of a body may take after the last event before the connection is dropped

_async_transport = False  # set by serve: its SDK clients run on aiohttp
_read_pace = 0.0  # set by serve (--coalesce-ms): how often at most a stream's reader wakes (_ahttp._Connection)
_import_lock = threading.Lock()


def use_async_transport(pace: float = 0.0) -> None:
    """Serve calls this before any SDK is imported: the SDKs then load their aiohttp transport, and
    the lean asyncio transport reads each stream at most every `pace` seconds."""
    global _async_transport, _read_pace
    _async_transport, _read_pace = True, pace


def import_sdk(name: str) -> ModuleType:
    """Import an official SDK ("openai", "anthropic").

    Whenever aiohttp is installed (the `serve` extra), importing either SDK imports its aiohttp
    transport too: measured +0.1 s for openai, +0.2 s for anthropic, on every one-shot and REPL
    start, though only serve uses it. Elsewhere the SDK is imported with aiohttp hidden
    (`sys.modules[name] = None` makes that import fail), so it takes its httpx path.
    """
    with _import_lock:  # one SDK import at a time: the preimport thread and an adapter may race
        hide = not _async_transport and "aiohttp" not in sys.modules
        if hide:
            sys.modules["aiohttp"] = None  # type: ignore[assignment]
        try:
            return importlib.import_module(name)
        finally:
            if hide and sys.modules.get("aiohttp", False) is None:
                del sys.modules["aiohttp"]


def client_options(config: ProviderConfig, timeout: float) -> dict[str, object]:
    """Constructor arguments shared by the official SDK clients.

    `timeout` bounds connecting and every wait for the next byte (so it is also the
    idle timeout of a stream); the SDKs' own retries are off because session.py owns
    the retry policy.
    """
    import httpx2

    return {
        "api_key": config.require_key(),
        "base_url": config.effective_base_url()[0],
        "max_retries": 0,
        "timeout": httpx2.Timeout(timeout, connect=min(timeout, 15.0)),
    }


def error_body(exc: BaseException) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) out of an SDK exception body, whatever its shape."""
    body = getattr(exc, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, None, None
    msg, etype, code = err.get("message"), err.get("type"), err.get("code")
    return (str(msg) if msg else None, str(etype) if etype else None, str(code) if code else None)


def status_error(client: Any, response: Any) -> Exception:
    """The SDK's own exception for an error response (`RateLimitError`, `NotFoundError`, …), the one
    its `create()` raises, so map_error reads a status error the same on every path.

    The one private SDK method streamchat calls; tests/test_library_internals.py pins it against the
    installed openai and anthropic.
    """
    error: Exception = client._make_status_error_from_response(response)
    return error


def _cut(response: Any) -> None:
    """Shut the response's socket down: a read blocked on it in another thread returns at once
    (closing the socket would not wake it)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def cut_on_cancel(response: Any) -> contextlib.AbstractContextManager[None]:
    """While streaming `response`, a cancel shuts its socket down, so a read blocked on a
    stalled upstream returns at once."""
    return closing_on_cancel(lambda: _cut(response))


class SdkProvider:
    """Base of the openai and anthropic adapters: `_sdk` is the SDK module, `_client` its client
    (both loaded on first use); `_lean` the lean transport when the provider takes that path."""

    name: str
    base_url: str | None
    params: frozenset[str] = frozenset()
    accepts: frozenset[str] = frozenset()
    required: tuple[str, ...] = ()  # the named arguments the SDK's `create` insists on

    def __init__(self, config: ProviderConfig, sdk: str, client_class: str, timeout: float) -> None:
        self.name = config.name
        self.base_url = config.effective_base_url()[0]
        self._config, self._timeout, self._sdk_name, self._client_class = config, timeout, sdk, client_class
        self._module: ModuleType | None = None
        self._sync_client: Any = None
        self._async_client: Any = None
        self._http: Any = None
        self._template: Any = None  # the SDK's request for an answer, without its body (see _capture)
        self._lean: HttpTransport | None = None
        self._alean: AsyncHttpTransport | None = None
        path = path_for(config, asyncio=_async_transport)
        if path in ("lean", "lean-async"):
            wire = WIRES[sdk]
            url = (self.base_url or wire.default_base_url).rstrip("/") + wire.path
            headers = wire.headers(config.require_key() or "not-needed")
            if any(char in value for value in headers.values() for char in "\r\n\0"):
                # http.client refused it as "unexpected error" (exit 1); _ahttp.py sent a header of the rest
                raise ConfigError(f"the key for provider '{config.name}' (or OPENAI_ORG_ID / OPENAI_PROJECT_ID) "
                                  "holds a line break", hint=f"set it again on one line (streamchat keys set {config.name}, "
                                  "or its variable)")
            if path == "lean":
                self._lean = HttpTransport(url, headers, timeout)
            else:
                from streamchat.providers._ahttp import AsyncHttpTransport

                self._alean = AsyncHttpTransport(url, headers, timeout, _read_pace)
        if path != "lean":
            self._client  # noqa: B018 — the SDK and its client now: a missing key fails at once

    @property
    def _sdk(self) -> ModuleType:
        if self._module is None:
            self._module = import_sdk(self._sdk_name)
        return self._module

    @property
    def _client(self) -> Any:
        if self._sync_client is None:
            self._sync_client = getattr(self._sdk, self._client_class)(**client_options(self._config, self._timeout))
        return self._sync_client

    def prepare(self, model: str) -> None:
        """Touch the streaming endpoint: the SDK imports its resource modules on first access."""
        if self._lean is None:
            self._endpoint(self._client)

    # -- what each adapter says about its wire format --------------------------------------
    def _endpoint(self, client: Any) -> Any:
        """The client's raw streaming `create` (the SDK makes the request and raises status errors)."""
        raise NotImplementedError

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _parser(self, request: ChatRequest) -> WireParser:
        raise NotImplementedError

    # -- streaming, blocking and asyncio -------------------------------------------------------
    def _call_arguments(self, request: ChatRequest) -> dict[str, Any]:
        """The whole body as `extra_body`, which the SDK merges into the request unchanged; the
        named arguments its signature requires are NOT_GIVEN, and `stream` is the one it reads.

        The SDKs pass every named argument through their TypedDict transforms on each request.
        Measured here: ~4 ms for twenty messages; and ~60 µs for `model` alone, whose annotation
        (a union with a Literal of every model name) is hashed on every call, ~50 µs more for
        openai's `stream_options`. Our body is already the wire's JSON (built by _content.py), so
        none of it needs transforming: a serve request spends that time on the event loop.
        """
        return {**self._placeholders(), "extra_body": self._body(request)}

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        """The adapter's whole request body, its `extra_body` merged in, without `stream`."""
        body = self._arguments(request)
        body.update(body.pop("extra_body", None) or {})
        body.pop("stream", None)
        return body

    def _placeholders(self) -> dict[str, Any]:
        """`create`'s required named arguments as NOT_GIVEN, and `stream`, the one it reads."""
        return {**dict.fromkeys(self.required, self._sdk.NOT_GIVEN), "stream": True}

    def _fall_back(self, request: ChatRequest, exc: Exception) -> bool:
        """Whether the request the server refused with `exc` (an SDK status error, before any event)
        is worth sending once more, in another form the adapter now uses (see OpenAIProvider). Only
        a request with a schema can be (`astream` relies on it)."""
        return False

    def _loaded_sdk(self) -> ModuleType | None:
        """The SDK module if anything imported it: only then can its exceptions reach us."""
        return sys.modules.get(self._sdk_name)

    def _status_errors(self) -> tuple[type[Exception], ...]:
        """The exception types of an error response, on whichever path was taken."""
        sdk = self._loaded_sdk()
        return (HttpStatusError,) if sdk is None else (HttpStatusError, sdk.APIStatusError)

    def stream(self, request: ChatRequest) -> EventStream:
        """The request sent (lean, or by the SDK); the stream is read here (events() closes it when closed)."""
        try:
            yield from self._stream_once(request)
        except self._status_errors() as exc:  # the status, so nothing was streamed yet
            if not self._fall_back(request, exc):
                raise
            yield from self._stream_once(request)

    def _stream_once(self, request: ChatRequest) -> EventStream:
        if self._lean is not None:
            with self._lean.post(wire_json({"stream": True, **self._body(request)})) as reply, \
                    closing_on_cancel(reply.cut):
                yield from self._read(reply.iter_text(), request, reply, reply.cut)
            return
        with self._endpoint(self._client)(**self._call_arguments(request)) as response, \
                cut_on_cancel(response.http_response):
            http = response.http_response
            yield from self._read(response.iter_text(), request, http, lambda: _cut(http))

    def _read(self, text: Iterator[str], request: ChatRequest, response: Any, cut: Callable[[], None]) -> EventStream:
        """A blocking response's events, then the rest of its body (so its connection is reused)."""
        chunks = iter(text)
        yield from events(chunks, self._parser(request))
        if isinstance(response, HttpResponse):  # the lean path: bounded by its socket, no timer thread a turn
            response.drain(chunks, DRAIN_S)
        else:
            _read_to_end_blocking(chunks, response, cut)

    def prepare_async(self) -> None:
        """Build the asyncio client, touch its endpoint and capture its request (serve, at startup)."""
        if self._async_client is None and self._alean is None:
            import asyncio
            import concurrent.futures

            self._http = self._async_http_client()
            self._async_client = getattr(self._sdk, "Async" + self._client_class)(
                **client_options(self._config, self._timeout), http_client=self._http)
            self._endpoint(self._async_client)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop: prepare may run inside one
                self._template = pool.submit(asyncio.run, self._capture()).result()

    async def aclose(self) -> None:
        """Close the asyncio client and its pooled connections (serve, as a worker stops)."""
        if self._alean is not None:
            await self._alean.aclose()
        if self._async_client is not None:
            client, self._async_client, self._http, self._template = self._async_client, None, None, None
            await client.close()

    def _async_http_client(self) -> Any:
        """The SDK's aiohttp transport when it has one (the `serve` extra, see import_sdk), else
        its httpx default.

        Measured under 200 concurrent streams: httpx's connection pool re-scans every connection
        and queued request whenever a response closes (~1 ms each at that size, on the loop), and
        its pure-Python HTTP parsing costs about as much per chunk as our own parsing; aiohttp's
        pool and C parser do not. Client, auth, base URL, timeouts and status errors stay the SDK's.
        """
        try:
            return self._sdk.DefaultAioHttpClient()
        except RuntimeError:  # the SDK was imported without aiohttp
            return self._sdk.DefaultAsyncHttpxClient()

    async def _capture(self) -> Any:
        """The request the SDK's asyncio `create()` sends for a streaming answer (URL from the base
        URL, auth and default headers, timeouts), with an empty body: through the SDK's public
        `with_options`, on an httpx2 transport that records it and sends nothing.

        Why: the SDK builds that request anew for every call (options copied, URL parsed, a dozen
        headers merged, retry and auth wrappers): 0.85–1.2 ms of CPU a request against 0.3–0.5 ms
        for the rest of a 1-token answer (bench/upstream_request.py). Under a burst a serve worker
        starts ~100 answers at once, so that was the first events' wait (#15). Built once, it holds
        for every request: streamchat's keys are static and the SDK's own retries are off.
        """
        import httpx2

        seen: list[httpx2.Request] = []

        def record(request: httpx2.Request) -> httpx2.Response:
            seen.append(request)
            return httpx2.Response(200)

        async with httpx2.AsyncClient(transport=httpx2.MockTransport(record)) as recorder:
            create = self._endpoint(self._async_client.with_options(http_client=recorder))
            async with create(**self._placeholders(), extra_body={}):
                pass
        template = seen[0]
        template.headers.pop("content-length", None)
        return template

    def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """`stream` on asyncio (serve), with the same one fallback. Only a request with a schema can
        fall back (see `_fall_back`): any other gets the answer's generator itself, not one around it
        that every event passes through."""
        if request.schema is None:
            return self._astream_once(request)
        return self._astream_falling_back(request)

    async def _astream_falling_back(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        try:
            async for event in self._astream_once(request):
                yield event
        except self._status_errors() as exc:
            if not self._fall_back(request, exc):
                raise
            async for event in self._astream_once(request):
                yield event

    async def _astream_once(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """The same through the SDK's asyncio client (serve: no thread per answer): the request the
        SDK builds (see _capture) with this answer's body, sent by the SDK's HTTP client; a status
        error is the SDK's own exception, so map_error reads it as on the blocking path. Cancelling
        the task or closing the generator closes the upstream response."""
        if self._alean is not None:
            reply = await self._alean.post(wire_json({"stream": True, **self._body(request)}))
            try:
                if not 200 <= reply.status < 300:
                    raise HttpStatusError(reply.status, reply.headers, await reply.read_error())
                # aevents over iter_text, inlined: two generators fewer for every event to pass through
                reader, read = Reader(self._parser(request)), reply.read
                decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
                while not reader.done and (data := await read()):
                    for event in joined(reader.feed(decode(data))):
                        yield event
                if not reader.done:
                    for event in reader.feed(decode(b"", True)):
                        yield event
                for event in reader.close():
                    yield event
                reply.unhold()  # the body's end is not held back by --coalesce-ms
                await _read_to_end(reply.iter_text())
            finally:
                self._alean.release(reply)
            return
        import httpx2

        self.prepare_async()
        template = self._template
        content = wire_json({"stream": True, **self._body(request)})  # the SDK's form
        outgoing = httpx2.Request(template.method, template.url, headers=template.headers, content=content,
                                  extensions=template.extensions)
        response = await self._http.send(outgoing, stream=True)
        try:
            if not response.is_success:
                await response.aread()
                raise status_error(self._async_client, response)
            chunks = aiter(response.aiter_text())
            async for event in aevents(chunks, self._parser(request)):
                yield event
            await _read_to_end(chunks)
        finally:
            await response.aclose()

    def list_models(self) -> list[str]:
        return sorted(m.id for m in self._client.models.list())

    def context_overflow(self, message: str | None, etype: str | None, code: str | None) -> bool:
        """Whether the provider's error says the prompt exceeds the context window."""
        return False

    def map_error(self, exc: Exception, *, model: str, started: bool) -> StreamchatError:
        if isinstance(exc, StreamchatError):
            return exc
        if isinstance(exc, self._status_errors()):
            refusal: Any = exc  # the SDK's APIStatusError or ours: the same attributes
            msg, etype, code = error_body(exc)
            status = refusal.status_code if refusal.status_code != 200 else None  # 200: an error event mid-stream
            return refused_schema(from_status(status, msg, etype or code, model=model, provider=self.name,
                                              retry_after=retry_after(refusal.response),
                                              context_overflow=self.context_overflow(msg, etype, code)), msg)
        sdk = self._loaded_sdk()
        if sdk is None:  # no SDK in this process: the rest are transport faults
            mapped = map_transport(exc, provider=self.name, base_url=self.base_url, started=started)
            return mapped or unexpected(exc, self.name)
        if isinstance(exc, sdk.APITimeoutError):
            return timed_out(provider=self.name, base_url=self.base_url, started=started)
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__ or exc.__context__ or exc
            mapped = map_transport(cause, provider=self.name, base_url=self.base_url, started=started)
            return mapped or unexpected(exc, self.name)
        if isinstance(exc, sdk.APIResponseValidationError):
            return ProtocolError(f"{self.name} sent a malformed stream chunk", hint="the server or proxy is misbehaving; retry")
        if isinstance(exc, sdk.APIError):  # an error event inside an HTTP 200 stream
            msg, etype, code = error_body(exc)
            return from_status(None, msg or str(exc), etype or code, model=model, provider=self.name)
        mapped = map_transport(exc, provider=self.name, base_url=self.base_url, started=started)
        return mapped or unexpected(exc, self.name)


def _read_to_end_blocking(chunks: Iterator[str], response: Any, cut: Callable[[], None]) -> None:
    """_read_to_end for the blocking path (REPL turns after the first reuse the connection): a
    read has no per-call timeout here, so a timer shuts the socket down (`cut`) if the end is late."""
    def late() -> None:
        if not response.is_closed:  # not once the body ended and the connection went back to the pool
            cut()

    watchdog = threading.Timer(DRAIN_S, late)
    watchdog.daemon = True
    watchdog.start()
    try:
        for _ in chunks:
            pass
    except Exception:  # cut off (or the server broke the body): the connection is dropped, as before
        pass
    finally:
        watchdog.cancel()


async def _read_to_end(chunks: AsyncIterator[str]) -> None:
    """After the last event, read what is left of the body (normally just the chunked encoding's
    end) so the connection goes back to the client's pool: otherwise closing the response closes
    the socket, and the next request pays a new TCP (and TLS) handshake: measured, every serve
    request opened a connection. Bounded: a server that keeps the stream open after its last
    event is cut off as before."""
    async def drain() -> None:
        async for _ in chunks:
            pass

    with contextlib.suppress(Exception):
        await bounded(drain(), DRAIN_S)
