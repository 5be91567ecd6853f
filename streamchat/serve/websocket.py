"""`/ws`: turns over a WebSocket, one answer at a time per socket, with cancel, an idle timeout,
a message rate limit and a cap on sockets per client address."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from streamchat.events import Done
from streamchat.serve.bridge import Finished, TurnStream
from streamchat.serve.gate import refused
from streamchat.serve.parse import decode_json, parse_call
from streamchat.serve.policy import Refused
from streamchat.serve.state import ServeState, serve_state
from streamchat.serve.wire import frame

WS_MESSAGES_PER_S = 20

router = APIRouter()


@router.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    state = serve_state(ws)
    try:
        state.gate.check(ws.headers, None)
    except Refused as err:  # the refusal's own status and error, as HTTP gets them (QA-26: all were a bare 403)
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(refused(err))
        else:  # a server without the denial-response extension answers this with its own 403
            await ws.close(code=1008)
        return
    await ws.accept()
    address = ws.client.host if ws.client else ""
    per_client = state.options.ws_per_client
    if state.sockets[address] >= per_client:  # accepted first, so the client can read why
        await ws.close(code=1013, reason=f"more than {per_client} WebSockets from this address")
        return
    state.sockets[address] += 1
    try:
        await _serve_socket(ws, state)
    finally:
        state.sockets[address] -= 1
        if not state.sockets[address]:
            del state.sockets[address]


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


async def _serve_socket(ws: WebSocket, state: ServeState) -> None:
    """One answer at a time per socket: a prompt sent while one streams gets a `busy` error frame;
    `{"type": "cancel"}` stops the current answer and keeps the socket. A socket that has sent nothing
    for `ws_idle_timeout` seconds while no answer streams is closed: idle ones held connection slots forever."""
    idle_timeout = state.options.ws_idle_timeout
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
                turn, _name = await state.turn(call, ws.headers)
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
