"""`/stream`: a turn as Server-Sent Events in streamchat's own event vocabulary (GET for a quick
`curl`, POST for a JSON body with history, attachments and tools)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from streamchat.events import Done, Event
from streamchat.serve.bridge import Finished
from streamchat.serve.gate import refused
from streamchat.serve.http_io import early_failure, event_stream, first_batch, read_body
from streamchat.serve.parse import Call, parse_call, query_body
from streamchat.serve.policy import Refused
from streamchat.serve.state import ServeState, serve_state
from streamchat.serve.wire import openai_error, sse

router = APIRouter()


async def _sse_stream(state: ServeState, call: Call, request: Request) -> Response:
    turn, _name = await state.turn(call, request.headers)
    first, rest = await first_batch(turn, request.receive)
    if (failed := early_failure(first)) is not None:
        return failed

    def render(item: Event | Finished) -> str:
        return "" if isinstance(item, Done) else sse(item.result if isinstance(item, Finished) else item)

    return event_stream(first, rest, render, turn)


@router.get("/stream")
async def stream_get(request: Request) -> Response:
    """`?prompt=…&model=…&system=…`, checked by `parse_call` as POST's body is (another parameter, or
    one given twice, is a 400 naming it), without FastAPI's validation machinery: ~0.2 ms of CPU per
    request, a fifth of what serve spent on a 1-token answer."""
    query = request.query_params
    if "prompt" not in query:
        return JSONResponse(openai_error("'prompt' Field required", "invalid_request", 400, "prompt"), status_code=400)
    try:
        body = query_body(query.multi_items())
        return await _sse_stream(serve_state(request), parse_call(body, openai=False, query=True), request)
    except Refused as err:
        return refused(err)


@router.post("/stream")
async def stream_post(request: Request) -> Response:
    state = serve_state(request)
    try:
        body = await read_body(request, state.options.max_body_bytes)
        return await _sse_stream(state, parse_call(body, openai=False), request)
    except Refused as err:
        return refused(err)
