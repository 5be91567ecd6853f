"""The FastAPI application: SSE /stream, OpenAI-compatible /v1, WebSocket /ws and the web page."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from streamchat.config import Settings
from streamchat.conversation import Conversation
from streamchat.errors import StreamchatError, UsageError
from streamchat.events import Done, Message, Role, TurnResult
from streamchat.serve.bridge import Finished, TurnStream
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

HEARTBEAT_S = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class ServeOptions:
    token: str | None = None
    cors_origin: str | None = None
    max_body_bytes: int = 1024 * 1024
    max_prompt_chars: int = 200_000


class RequestError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _content(value: Any) -> str:
    """A message's content: a string, or OpenAI content parts of type text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict) and p.get("type") == "text")
    raise RequestError(422, "message content must be a string or a list of text parts", "invalid_content")


def parse_messages(body: dict[str, Any]) -> list[Message]:
    if isinstance(body.get("messages"), list):
        out = []
        for m in body["messages"]:
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise RequestError(422, "each message needs a role of system, user or assistant", "invalid_message")
            out.append(Message(ROLES[m["role"]], _content(m.get("content", ""))))
    elif isinstance(body.get("prompt"), str):
        out = [Message("user", body["prompt"])]
    else:
        raise RequestError(422, "send 'messages' (a list) or 'prompt' (a string)", "missing_prompt")
    if not out or out[-1].role != "user":
        raise RequestError(422, "the last message must be from the user", "missing_prompt")
    return out


def request_overrides(server: Overrides, body: dict[str, Any]) -> Overrides:
    """The server's own options (its -m, --timeout) with what this request may change on top."""
    spec = body.get("model")
    temperature = body.get("temperature")
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    system = body.get("system")
    return replace(
        server,
        model=spec if isinstance(spec, str) and spec else server.model,
        system=system if isinstance(system, str) and system else None,
        temperature=float(temperature) if isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
        else None,
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
    )


def create_app(settings: Settings, server: Overrides, options: ServeOptions) -> FastAPI:
    app = FastAPI(title="streamchat", docs_url=None, redoc_url=None, openapi_url=None)
    page = files("streamchat.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    if options.cors_origin:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[options.cors_origin], allow_methods=["*"],
                           allow_headers=["*"])

    def authorized(headers: Any, query: Any) -> bool:
        if not options.token:
            return True
        given = headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else query.get("token", "")
        return hmac.compare_digest(given.encode(), options.token.encode())

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method == "OPTIONS":
            return await call_next(request)
        if not authorized(request.headers, request.query_params):
            return JSONResponse(openai_error("missing or wrong bearer token", "unauthorized", 401), status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > options.max_body_bytes:
            return JSONResponse(openai_error(f"request body over {options.max_body_bytes} bytes", "too_large", 413),
                                status_code=413)
        return await call_next(request)

    def turn_for(body: dict[str, Any]) -> tuple[TurnStream, str]:
        """A turn through the same ChatSession as the CLI (config system/temperature/max_tokens apply)."""
        messages = parse_messages(body)
        if sum(len(m.content) for m in messages) > options.max_prompt_chars:
            raise RequestError(422, f"prompt longer than {options.max_prompt_chars} characters", "prompt_too_long")
        try:
            session = ChatSession(settings, request_overrides(server, body),
                                  conversation=Conversation(seed=tuple(messages[:-1])))
        except StreamchatError as err:
            raise RequestError(http_status(err) if not isinstance(err, UsageError) else 404, str(err), err.code) from None
        return TurnStream(session, messages[-1].content), session.model_name

    def error_response(err: RequestError) -> JSONResponse:
        return JSONResponse(openai_error(err.message, err.code, err.status), status_code=err.status)

    async def read_json(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > options.max_body_bytes:
            raise RequestError(413, f"request body over {options.max_body_bytes} bytes", "too_large")
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise RequestError(400, f"invalid JSON: {exc.msg}", "invalid_json") from None
        if not isinstance(body, dict):
            raise RequestError(422, "the body must be a JSON object", "invalid_body")
        return body

    async def sse_body(turn: TurnStream) -> AsyncIterator[str]:
        async for batch in turn.batches(heartbeat=HEARTBEAT_S):
            if batch is None:
                yield ": ping\n\n"
                continue
            yield "".join(sse(item.result) if isinstance(item, Finished) else sse(item)
                          for item in batch if not isinstance(item, Done))

    def stream_response(body: dict[str, Any]) -> Response:
        try:
            turn, _name = turn_for(body)
        except RequestError as err:
            return error_response(err)
        return StreamingResponse(sse_body(turn), media_type="text/event-stream", headers=SSE_HEADERS)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                                           "script-src 'unsafe-inline'; connect-src 'self'"})

    @app.get("/stream")
    async def stream_get(prompt: str, model: str | None = None, system: str | None = None) -> Response:
        return stream_response({"prompt": prompt, "model": model, "system": system})

    @app.post("/stream")
    async def stream_post(request: Request) -> Response:
        try:
            return stream_response(await read_json(request))
        except RequestError as err:
            return error_response(err)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names: list[str] = list(settings.aliases)
        for name, prov in settings.providers.items():
            names += [f"{name}:{m}" for m in dict.fromkeys([*([prov.default_model] if prov.default_model else []),
                                                              *prov.models])]
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "streamchat"}
                                           for n in names]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = await read_json(request)
            turn, name = turn_for(body)
        except RequestError as err:
            return error_response(err)
        chunks = OpenAIChunks(body.get("model") or name)
        if not body.get("stream"):
            result = None
            async for item in turn.events():
                if isinstance(item, Finished):
                    result = item.result
            assert result is not None
            if not result.ok:
                payload, status = result_error(result)
                return JSONResponse(payload, status_code=status)
            return JSONResponse(chunks.completion(result))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def closing(result: TurnResult) -> str:
            if not result.ok:
                payload, _status = result_error(result)
                return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"  # the SDK raises APIError on it
            usage = chunks.chunk({}, usage=usage_dict(result), choices=False) if include_usage else ""
            return chunks.chunk({}, finish_reason(result)) + usage + "data: [DONE]\n\n"

        async def body_iter() -> AsyncIterator[str]:
            yield chunks.chunk({"role": "assistant", "content": ""})
            async for batch in turn.batches(heartbeat=HEARTBEAT_S):
                if batch is None:
                    yield ": ping\n\n"
                    continue
                yield "".join(closing(item.result) if isinstance(item, Finished) else (chunks.for_event(item) or "")
                              for item in batch)

        return StreamingResponse(body_iter(), media_type="text/event-stream", headers=SSE_HEADERS)

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        if not authorized(ws.headers, ws.query_params):
            await ws.close(code=1008)
            return
        await ws.accept()
        receiver: asyncio.Future[Any] = asyncio.ensure_future(ws.receive_json())
        try:
            while True:
                message = await receiver
                receiver = asyncio.ensure_future(ws.receive_json())
                if not isinstance(message, dict) or message.get("type") == "cancel":
                    continue
                try:
                    turn, _name = turn_for(message)
                except RequestError as err:
                    await ws.send_json({"type": "error", "message": err.message, "code": err.code})
                    continue
                receiver = await _run_ws_turn(ws, turn, receiver)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            receiver.cancel()

    return app


async def _run_ws_turn(ws: WebSocket, turn: TurnStream, receiver: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """Stream one answer while listening for {"type": "cancel"}; returns the pending receive."""
    events = turn.events().__aiter__()
    next_item = asyncio.ensure_future(events.__anext__())
    try:
        while True:
            done, _ = await asyncio.wait({next_item, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                message = receiver.result()  # raises WebSocketDisconnect when the client leaves
                if isinstance(message, dict) and message.get("type") == "cancel":
                    turn.cancel()
                receiver = asyncio.ensure_future(ws.receive_json())
            if next_item in done:
                item = next_item.result()
                if isinstance(item, Finished):
                    await ws.send_json(frame(item.result))
                    return receiver
                if item is not None and not isinstance(item, Done):
                    await ws.send_json(frame(item))
                next_item = asyncio.ensure_future(events.__anext__())
    finally:
        turn.cancel()
        if not next_item.done():
            next_item.cancel()
