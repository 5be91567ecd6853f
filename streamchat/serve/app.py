"""The FastAPI application: SSE /stream, OpenAI-compatible /v1, WebSocket /ws and the web page.

Every request passes the same gate first (Host, Origin, token, body size); every turn is a
`ChatSession` built from the server's settings, the request's checked fields and the
model policy; every stream cancels its upstream when the response ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from streamchat.cancel import bounded
from streamchat.config import Settings
from streamchat.conversation import Conversation
from streamchat.errors import StreamchatError
from streamchat.events import Done, Event
from streamchat.serve.bridge import Finished, TurnStream
from streamchat.serve.parse import Call, decode_json, parse_call
from streamchat.serve.policy import WS_IDLE_TIMEOUT_S, WS_PER_CLIENT, ModelPolicy, OriginPolicy, Refused
from streamchat.serve.wire import (
    OpenAIChunks,
    finish_reason,
    frame,
    http_status,
    openai_error,
    result_error,
    sse,
    usage_dict,
)
from streamchat.service import ChatSession, Overrides

log = logging.getLogger("streamchat.serve")

HEARTBEAT_S = 15.0
BODY_TIMEOUT_S = 30.0
WS_MESSAGES_PER_S = 20
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PAGE_CSP = ("default-src 'self'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
            "frame-ancestors 'none'")

Batch = list[Event | Finished] | None


@dataclass(frozen=True)
class ServeOptions:
    token: str | None = None
    cors_origin: str | None = None
    origins: OriginPolicy = OriginPolicy()
    allow_local_models: bool = False
    allow_models: tuple[str, ...] = ()  # `--allow-model` patterns
    ws_idle_timeout: float = WS_IDLE_TIMEOUT_S
    ws_per_client: int = WS_PER_CLIENT
    max_body_bytes: int = 1024 * 1024
    max_prompt_chars: int = 200_000


SPEC_VAR = "STREAMCHAT_SERVE_SPEC"


@dataclass(frozen=True)
class ServeSpec:
    """Everything `streamchat serve` was started with, so each worker process builds the same app."""

    config: str | None = None
    model: str | None = None
    timeout: float | None = None
    retry: bool = True
    token: str | None = None
    cors_origin: str | None = None
    allow_local_models: bool = False
    allow_models: tuple[str, ...] = ()
    ws_idle_timeout: float = WS_IDLE_TIMEOUT_S
    ws_per_client: int = WS_PER_CLIENT
    bind: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()
    debug: bool = False

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> ServeSpec:
        data = json.loads(text)
        data["allow_hosts"] = tuple(data.get("allow_hosts") or ())
        data["allow_models"] = tuple(data.get("allow_models") or ())
        return cls(**data)

    def app(self, settings: Settings) -> FastAPI:
        options = ServeOptions(token=self.token, cors_origin=self.cors_origin, allow_local_models=self.allow_local_models,
                               allow_models=self.allow_models, ws_idle_timeout=self.ws_idle_timeout,
                               ws_per_client=self.ws_per_client,
                               origins=OriginPolicy.for_bind(self.bind, self.allow_hosts, self.cors_origin))
        return create_app(settings, Overrides(model=self.model, timeout=self.timeout, retry=self.retry), options)


def app_from_env() -> FastAPI:
    """The uvicorn factory for `serve --workers N`: the spec comes from the parent's environment."""
    import os

    from streamchat import logs
    from streamchat.config import load_settings
    from streamchat.providers._sdk import use_async_transport

    use_async_transport()  # a fresh worker process: before the app imports the SDK
    spec = ServeSpec.from_json(os.environ[SPEC_VAR])
    settings = load_settings(Path(spec.config) if spec.config else None)
    logs.configure(debug=spec.debug, secrets=(spec.token or "",))
    return spec.app(settings)


class CancellingStreamingResponse(StreamingResponse):
    """A streaming response that cancels its turn when it ends, however it ends (done,
    client gone, task cancelled), so no worker or upstream stream outlives the request."""

    def __init__(self, content: AsyncIterator[str], turn: TurnStream, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.turn = turn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.turn.cancel()


def _warm(settings: Settings, server: Overrides) -> None:
    """Load the server's own model before the first request: its SDK import (~1 s), its clients, or
    the local weights — otherwise the first burst of clients all wait for it. A failure is left
    for a request to report.

    And the price database, which every turn's cost reads: ~0.2 s to load, and the first turn of
    each worker loaded it on the event loop. Measured in the first 200-client burst: that worker
    accepted some connections ~0.6 s late, and their streams took up to 2.6× their unloaded time.
    """
    from streamchat.cost import context_window
    from streamchat.service import resolve_target

    with contextlib.suppress(StreamchatError):
        context_window(settings, *settings.resolve(server.model))  # first: building the model may fail (no key)
        provider = resolve_target(settings, server.model, server.timeout or settings.timeout).provider
        prepare_async = getattr(provider, "prepare_async", None)
        if prepare_async is not None:
            prepare_async()


class Guard:
    """Pure ASGI middleware for the request checks. Not `@app.middleware("http")`: Starlette's
    BaseHTTPMiddleware relays every streamed chunk through an extra task and memory stream, which
    under load delayed every client's first event by seconds."""

    def __init__(self, app: ASGIApp, refusal: Callable[[Request], Response | None]) -> None:
        self.app, self.refusal = app, refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] != "OPTIONS":
            response = self.refusal(Request(scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(err: Refused) -> JSONResponse:
    return JSONResponse(openai_error(err.message, err.code, err.status), status_code=err.status)


@contextlib.asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    from streamchat.providers.base import aclose_all

    await aclose_all()


def create_app(settings: Settings, server: Overrides, options: ServeOptions) -> FastAPI:
    app = FastAPI(title="streamchat", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan)
    page = files("streamchat.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    models = ModelPolicy(settings, server.model, allow_local=options.allow_local_models, patterns=options.allow_models)
    _warm(settings, server)

    def authorized(headers: Any, query_token: str | None) -> bool:
        if not options.token:
            return True
        given = headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else (query_token or "")
        return hmac.compare_digest(given.encode(), options.token.encode())

    def gate(headers: Any, query_token: str | None, public: bool = False) -> None:
        """Host, Origin and token checks shared by HTTP and WebSocket requests; `public` files (the
        page's scripts, which the browser fetches without the token) skip the token only."""
        host = headers.get("host")
        options.origins.check_host(host)
        options.origins.check_origin(headers.get("origin"), host, headers.get("sec-fetch-site"))
        if not public and not authorized(headers, query_token):
            raise Refused(401, "missing or wrong bearer token", "unauthorized")

    def refusal(request: Request) -> Response | None:
        """Token, Host and Origin checks and the declared body size, before any route runs."""
        page_token = request.query_params.get("token") if request.url.path == "/" else None
        try:
            gate(request.headers, page_token, public=request.url.path.startswith("/static/"))
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > options.max_body_bytes:
                raise Refused(413, f"request body over {options.max_body_bytes} bytes", "too_large")
        except Refused as err:
            response = _refusal(err)
            if err.status == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None

    app.add_middleware(Guard, refusal=refusal)

    if options.cors_origin:  # added last, so it wraps the guard: refusals carry CORS headers too
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[options.cors_origin], allow_methods=["*"],
                           allow_headers=["*"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return JSONResponse(openai_error(str(exc.detail), code, exc.status_code), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return JSONResponse(openai_error(f"'{where}' {first.get('msg', 'is invalid')}", "invalid_request", 400),
                            status_code=400)

    def turn_for(call: Call) -> tuple[TurnStream, str]:
        """A turn through the same ChatSession as the CLI (config system/temperature/max_tokens apply)."""
        if sum(len(m.content) for m in call.messages) > options.max_prompt_chars:
            raise Refused(422, f"prompt longer than {options.max_prompt_chars} characters", "prompt_too_long")
        overrides = replace(server, model=models.choose(call.model), system=call.system,
                            temperature=call.temperature, max_tokens=call.max_tokens, params=call.params,
                            tools=call.tools, tool_choice=call.tool_choice, schema=call.schema)
        last = call.messages[-1]
        results = last.role == "tool"  # the client ran our tool calls: the model goes on from its results
        try:
            session = ChatSession(settings, overrides,
                                  conversation=Conversation(seed=call.messages if results else call.messages[:-1]))
        except StreamchatError as err:  # never echo server paths or key details to a client
            raise Refused(http_status(err), f"model '{overrides.model}' is not available on this server "
                          f"({err.code})", err.code) from None
        unsupported = sorted({k for k, _ in call.params} - session.target.provider.params)
        if unsupported:
            raise Refused(400, f"parameter '{unsupported[0]}' is not supported by {session.target.provider_name}",
                          "unsupported_parameter")
        if results:
            return TurnStream(session, None), session.model_name
        return TurnStream(session, last.content, last.attachments), session.model_name

    async def read_body(request: Request) -> dict[str, Any]:
        """The JSON body, its size checked while it is read, its arrival bounded in time."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise Refused(415, "send the body as Content-Type: application/json", "unsupported_media_type")
        parts: list[bytes] = []
        size = 0

        async def collect() -> None:
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > options.max_body_bytes:
                    raise Refused(413, f"request body over {options.max_body_bytes} bytes", "too_large")
                parts.append(chunk)

        try:
            await bounded(collect(), BODY_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise Refused(408, f"the request body took longer than {BODY_TIMEOUT_S:g} s", "body_timeout") from None
        except ClientDisconnect:  # uvicorn logged it as a 65-line traceback: one line says it all
            log.warning("a client left before sending its whole request body (%s %s)", request.method, request.url.path)
            raise Refused(400, "the request body ended with the connection", "client_disconnected") from None
        return decode_json(b"".join(parts))

    async def first_batch(turn: TurnStream, receive: Receive) -> tuple[Batch, AsyncIterator[Batch]]:
        """Wait for the turn's first events (or its failure) before any response header is sent."""
        batches = turn.batches(heartbeat=HEARTBEAT_S).__aiter__()
        try:
            async with _cancelled_when_gone(receive, turn):
                return await batches.__anext__(), batches
        except BaseException:  # the server is stopping
            turn.cancel()
            raise

    def early_failure(first: Batch) -> JSONResponse | None:
        """A turn that failed before any event: a real HTTP status, so clients can see and retry it."""
        if first is None or len(first) != 1 or not isinstance(first[0], Finished):
            return None
        result = first[0].result
        if result.ok or result.text:
            return None
        payload, status = result_error(result)
        return JSONResponse(payload, status_code=status)

    async def sse_stream(call: Call, receive: Receive) -> Response:
        turn, _name = turn_for(call)
        first, rest = await first_batch(turn, receive)
        if (failed := early_failure(first)) is not None:
            return failed

        def render(item: Event | Finished) -> str:
            return "" if isinstance(item, Done) else sse(item.result if isinstance(item, Finished) else item)

        return CancellingStreamingResponse(_relay(first, rest, render), turn, media_type="text/event-stream", headers=SSE_HEADERS)

    # the page's script and the Markdown renderer and sanitizer it uses, shipped in the package (no CDN)
    app.mount("/static", StaticFiles(packages=[("streamchat.serve", "static")]), name="static")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"})

    @app.get("/stream")
    async def stream_get(request: Request, prompt: str, model: str | None = None, system: str | None = None) -> Response:
        try:
            body = {k: v for k, v in {"prompt": prompt, "model": model, "system": system}.items() if v is not None}
            return await sse_stream(parse_call(body, openai=False), request.receive)
        except Refused as err:
            return _refusal(err)

    @app.post("/stream")
    async def stream_post(request: Request) -> Response:
        try:
            return await sse_stream(parse_call(await read_body(request), openai=False), request.receive)
        except Refused as err:
            return _refusal(err)

    def model_entry(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "streamchat"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_entry(n) for n in models.offered()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> Response:
        try:
            if not model_id:
                raise Refused(404, "name a model: GET /v1/models lists them", "model_not_found")
            models.choose(model_id)  # the same decision as a request naming it
        except Refused as err:
            return _refusal(err)
        return JSONResponse(model_entry(model_id))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            call = parse_call(await read_body(request), openai=True)
            turn, name = turn_for(call)
            first, rest = await first_batch(turn, request.receive)
        except Refused as err:
            return _refusal(err)
        if (failed := early_failure(first)) is not None:
            return failed
        chunks = OpenAIChunks(call.model if isinstance(call.model, str) and call.model else name)
        if not call.stream:
            batch = first
            try:
                async with _cancelled_when_gone(request.receive, turn):
                    while batch is None or not isinstance(batch[-1], Finished):
                        batch = await rest.__anext__()
            finally:
                turn.cancel()
            result = batch[-1].result
            if not result.ok:
                payload, status = result_error(result)
                return JSONResponse(payload, status_code=status)
            return JSONResponse(chunks.completion(result))

        def closing(item: Finished) -> str:
            result = item.result
            if not result.ok:
                payload, _status = result_error(result)
                return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"  # the SDK raises APIError on it
            usage = chunks.chunk({}, usage=usage_dict(result), choices=False) if call.include_usage else ""
            return chunks.chunk({}, finish_reason(result)) + usage + "data: [DONE]\n\n"

        def render(item: Event | Finished) -> str:
            return closing(item) if isinstance(item, Finished) else (chunks.for_event(item) or "")

        return CancellingStreamingResponse(_relay(first, rest, render, chunks.chunk({"role": "assistant", "content": ""})),
                                           turn, media_type="text/event-stream", headers=SSE_HEADERS)

    sockets: Counter[str] = Counter()  # open WebSockets per client address

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        try:
            gate(ws.headers, None)
        except Refused:
            await ws.close(code=1008)
            return
        await ws.accept()
        address = ws.client.host if ws.client else ""
        if sockets[address] >= options.ws_per_client:  # accepted first, so the client can read why
            await ws.close(code=1013, reason=f"more than {options.ws_per_client} WebSockets from this address")
            return
        sockets[address] += 1
        try:
            await _serve_socket(ws, turn_for, options.ws_idle_timeout)
        finally:
            sockets[address] -= 1
            if not sockets[address]:
                del sockets[address]

    _settle_heap()
    return app


def _settle_heap() -> None:
    """Move everything built so far (FastAPI's and the SDK's pydantic schemas, imported modules)
    out of the collector's reach. Left in, each full collection under load walked it all again:
    measured 30–130 ms pauses, four of them in one 200-client run, stalling every stream. And
    collect the young generation less often: a streaming server makes many short-lived objects,
    which reference counting frees, and the default (every 700 allocations) ran ~180 collections a
    burst; this cut serve's CPU by ~5 % under the load benchmark."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


@contextlib.asynccontextmanager
async def _cancelled_when_gone(receive: Receive, turn: TurnStream) -> AsyncIterator[None]:
    """Cancel the turn if the client hangs up inside the block. Needed where nothing else reads the
    connection: before the first event (no response has started) and for a whole non-streamed answer.
    Without it 30 of 30 abandoned answers ran to completion upstream, and a stalled upstream held its
    connection until the timeout. (Once a stream has started, the response itself listens.)"""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":  # the body's last part (a GET's empty one)
            pass
        turn.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        yield
    finally:
        watcher.cancel()


async def _relay(first: Batch, rest: AsyncIterator[Batch], render: Callable[[Event | Finished], str],
                 opening: str = "") -> AsyncIterator[str]:
    """A turn's batches as response text (SSE and OpenAI chunks alike): a ping comment for a quiet
    spell, one write per batch, the end at `Finished`."""
    if opening:
        yield opening
    batch = first
    while True:
        if batch is None:
            yield ": ping\n\n"
        else:
            yield "".join(render(item) for item in batch)
            if isinstance(batch[-1], Finished):
                return
        batch = await rest.__anext__()


async def _next_message(ws: WebSocket) -> dict[str, Any] | str:
    """The next client frame as a JSON object, or a line saying why it is not one."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        return "binary frames are not accepted: send JSON text"
    try:
        data = decode_json(text.encode("utf-8"))
    except Refused as err:
        return err.message
    return data


async def _serve_socket(ws: WebSocket, turn_for: Callable[[Call], tuple[TurnStream, str]], idle_timeout: float) -> None:
    """One answer at a time per socket: a prompt sent while one streams gets a `busy` error frame;
    `{"type": "cancel"}` stops the current answer and keeps the socket. A socket that has sent nothing
    for `idle_timeout` seconds while no answer streams is closed: idle ones held connection slots forever."""
    receiver: asyncio.Future[dict[str, Any] | str] = asyncio.ensure_future(_next_message(ws))
    streaming: asyncio.Task[None] | None = None
    turn: TurnStream | None = None
    recent: deque[float] = deque(maxlen=WS_MESSAGES_PER_S)
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = {receiver} | ({streaming} if streaming else set())
            done, _ = await asyncio.wait(waiting, timeout=None if streaming else idle_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                await ws.close(code=1000, reason=f"idle for {idle_timeout:g} s")
                return
            if streaming is not None and streaming in done:
                streaming.result()
                streaming, turn = None, None
            if receiver not in done:
                continue
            message = receiver.result()
            receiver = asyncio.ensure_future(_next_message(ws))
            recent.append(time.monotonic())
            if len(recent) == recent.maxlen and recent[-1] - recent[0] < 1.0:
                await ws.close(code=1008, reason="too many messages")
                return
            if isinstance(message, str):
                await ws.send_json({"type": "error", "message": message, "code": "invalid_json"})
                continue
            if message.get("type") == "cancel":
                if turn is not None:
                    turn.cancel()
                continue
            if streaming is not None:
                await ws.send_json({"type": "error", "code": "busy",
                                    "message": "an answer is streaming: wait for it, or send {\"type\": \"cancel\"}"})
                continue
            try:
                call = parse_call({k: v for k, v in message.items() if k != "type"}, openai=False)
                turn, _name = turn_for(call)
            except Refused as err:
                await ws.send_json({"type": "error", "message": err.message, "code": err.code})
                continue
            streaming = asyncio.ensure_future(_stream_to_socket(ws, turn))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        receiver.cancel()
        if turn is not None:
            turn.cancel()
        if streaming is not None:
            streaming.cancel()


async def _stream_to_socket(ws: WebSocket, turn: TurnStream) -> None:
    try:
        async for item in turn.events():
            if isinstance(item, Finished):
                await ws.send_json(frame(item.result))
                return
            if item is not None and not isinstance(item, Done):
                await ws.send_json(frame(item))
    finally:
        turn.cancel()
