"""What the HTTP routes (`/stream`, `/v1/chat/completions`) share: the JSON body read with its
size and arrival bounded, the turn's first events awaited before any header is sent, and a
streamed response that cancels its turn however it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from streamchat.cancel import bounded
from streamchat.events import Event
from streamchat.serve.bridge import Finished, TurnStream
from streamchat.serve.parse import decode_json
from streamchat.serve.policy import Refused
from streamchat.serve.wire import result_error, retry_headers

log = logging.getLogger("streamchat.serve")

HEARTBEAT_S = 15.0
BODY_TIMEOUT_S = 30.0
# what StreamingResponse(media_type="text/event-stream", headers=...) sent, in its order
SSE_RAW_HEADERS = ((b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
                   (b"content-type", b"text/event-stream; charset=utf-8"))

Batch = list[Event | Finished] | None


RAW_SEND = "streamchat.raw_send"  # the server's own `send`, kept in the scope by app.RawSend


class TurnResponse(Response):
    """A turn as a `text/event-stream` response, from a plain ASGI call: the headers once, through
    the middleware (CORS, the error handlers), then one `http.response.body` per batch, pre-encoded
    and handed to the server's own `send`, the last batch with the chunked end in the same write.
    The turn is cancelled when the response ends, however it ends (done, client gone, task
    cancelled), so no worker or upstream stream outlives the request.

    Why not Starlette's StreamingResponse: per request it ran a task group of two tasks (one to
    stream, one to listen for the client leaving), and each chunk went through an async generator,
    a str check and encode, then three middleware wrappers of `send`, and ended with a write of its
    own for the empty last chunk (a syscall per response). Here a watcher task cancels the turn when
    the client leaves; the loop below then reads the turn's `Finished` and returns."""

    media_type = "text/event-stream"

    def __init__(self, first: Batch, rest: AsyncIterator[Batch], render: Callable[[Event | Finished], str],
                 turn: TurnStream, opening: str = "") -> None:
        self.first, self.rest, self.to_text, self.turn, self.opening = first, rest, render, turn, opening
        self.status_code = 200
        self.background = None
        self.raw_headers = list(SSE_RAW_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        turn, render, rest = self.turn, self.to_text, self.rest
        watch(turn, receive)  # first_batch's, still running: one watcher for the whole request
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            write = scope.get(RAW_SEND, send)
            text, batch = self.opening, self.first
            while True:
                if batch is None:
                    last, text = False, text + ": ping\n\n"
                else:
                    last, text = type(batch[-1]) is Finished, text + "".join(map(render, batch))
                await write({"type": "http.response.body", "body": text.encode(), "more_body": not last})
                if last:
                    break
                text, batch = "", await rest.__anext__()
        finally:
            turn.cancel()  # and its watcher
        if self.background is not None:
            await self.background()


def watch(turn: TurnStream, receive: Receive) -> None:
    """Cancel the turn if the client hangs up, from now until the turn is cancelled (as every
    response does when it ends, however it ends). Needed where nothing else reads the connection:
    before the first event (no response has started), for a whole non-streamed answer, and while
    a stream is written. Without it 30 of 30 abandoned answers ran to completion upstream, and a
    stalled upstream held its connection until the timeout. One task per request, from the turn's
    start to its end: not one to the first event and another for the response (a task made and
    cancelled per request)."""
    if turn.watcher is None:
        turn.watcher = asyncio.ensure_future(_cancel_when_gone(receive, turn))


async def _cancel_when_gone(receive: Receive, turn: TurnStream) -> None:
    while (await receive())["type"] != "http.disconnect":  # the body's last part (a GET's empty one)
        pass
    turn.cancel()


def event_stream(first: Batch, rest: AsyncIterator[Batch], render: Callable[[Event | Finished], str],
                 turn: TurnStream, opening: str = "") -> TurnResponse:
    """The turn's batches as a `text/event-stream` response, rendered by `render`."""
    return TurnResponse(first, rest, render, turn, opening)


async def read_body(request: Request, max_bytes: int) -> dict[str, Any]:
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
            if size > max_bytes:
                raise Refused(413, f"request body over {max_bytes} bytes", "too_large")
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
    watch(turn, receive)
    try:
        first = await batches.__anext__()
    except BaseException:  # the server is stopping
        turn.cancel()
        raise
    if first is not None and type(first[-1]) is Finished:  # over already (failed early): its watcher too
        turn.cancel()
    return first, batches


def early_failure(first: Batch) -> JSONResponse | None:
    """A turn that failed before any event: a real HTTP status, so clients can see and retry it."""
    if first is None or len(first) != 1 or not isinstance(first[0], Finished):
        return None
    result = first[0].result
    if result.ok or result.text:
        return None
    payload, status = result_error(result)
    return JSONResponse(payload, status_code=status, headers=retry_headers(result))
