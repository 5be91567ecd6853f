"""The OpenAI-compatible API: `/v1/models` and `/v1/chat/completions` (streamed as OpenAI chunks,
or one completion object), so the OpenAI SDKs and tools built on them talk to streamchat."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from streamchat.events import Event
from streamchat.serve.bridge import Finished
from streamchat.serve.gate import bearer, refused
from streamchat.serve.http_io import early_failure, event_stream, first_batch, read_body
from streamchat.serve.keys import model_names
from streamchat.serve.parse import parse_call
from streamchat.serve.policy import Refused
from streamchat.serve.state import serve_state
from streamchat.serve.wire import OpenAIChunks, finish_reason, result_error, retry_headers, usage_dict

router = APIRouter(prefix="/v1")


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "streamchat"}


@router.get("/models")
async def list_models(request: Request) -> Response:
    """The models offered; with `--keys`, those the request's key may use (the admin token sees all)."""
    state = serve_state(request)
    offered = state.models.offered()
    if state.keys is not None:
        try:
            offered = state.keys.usable(bearer(request.headers, None),
                                        {m: model_names(state.settings, m) for m in offered})
        except Refused as err:
            return refused(err)
    return JSONResponse({"object": "list", "data": [_model_entry(n) for n in offered]})


@router.get("/models/{model_id:path}")
async def get_model(request: Request, model_id: str) -> Response:
    state = serve_state(request)
    try:
        if not model_id:
            raise Refused(404, "name a model: GET /v1/models lists them", "model_not_found")
        state.models.choose(model_id)  # the same decision as a request naming it
        if state.keys is not None:  # a model the key may not use is not there for it, as OpenAI answers
            try:
                state.keys.check_model(bearer(request.headers, None), model_id, model_names(state.settings, model_id))
            except Refused as err:
                if err.status != 403:
                    raise
                raise Refused(404, "no such model for this key — GET /v1/models lists the ones it may use",
                              "model_not_found") from None
    except Refused as err:
        return refused(err)
    return JSONResponse(_model_entry(model_id))


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    state = serve_state(request)
    try:
        call = parse_call(await read_body(request, state.options.max_body_bytes), openai=True)
        turn, name = await state.turn(call, request.headers)
        first, rest = await first_batch(turn, request.receive)
    except Refused as err:
        return refused(err)
    if (failed := early_failure(first)) is not None:
        return failed
    chunks = OpenAIChunks(call.model if isinstance(call.model, str) and call.model else name)
    if not call.stream:
        batch = first
        try:  # first_batch's watcher cancels the turn if the client leaves meanwhile
            while batch is None or not isinstance(batch[-1], Finished):
                batch = await rest.__anext__()
        finally:
            turn.cancel()
        result = batch[-1].result
        if not result.ok:
            payload, status = result_error(result)
            return JSONResponse(payload, status_code=status, headers=retry_headers(result))
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

    return event_stream(first, rest, render, turn, chunks.chunk({"role": "assistant", "content": ""}))
