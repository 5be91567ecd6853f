"""Wire shapes for the server: SSE events, WebSocket frames and OpenAI chunks, from one event model."""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

from streamchat import errors
from streamchat.events import Event, Outcome, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallStart, TurnResult
from streamchat.records import error_code, event_dict, result_dict
from streamchat.render.sanitize import sanitize

_HTTP_STATUS: list[tuple[type[errors.StreamchatError], int]] = [
    (errors.ModelNotFoundError, 404),
    (errors.BadRequestError, 400),
    (errors.UsageError, 400),
    (errors.RateLimitError, 429),
    (errors.OverloadedError, 503),
    (errors.NetworkError, 504),
    (errors.StreamchatError, 502),
]


# What a remote client is told when a turn fails on the server's side: one generic line per kind,
# with the same code and HTTP status. The upstream's own words (a provider quotes a masked key, an
# organisation id, an internal address) and streamchat's hints (written for the operator: "check the
# key for provider 'openai' (streamchat config show)") go to serve's log (bridge.TurnStream), not to
# every client. First match wins: subclasses before their bases.
_SERVER_SIDE: list[tuple[type[errors.StreamchatError], str]] = [
    (errors.AuthError, "the upstream provider refused serve's credentials; the operator can see why in serve's log"),
    (errors.RateLimitError, "the upstream provider is rate limiting serve; retry later"),
    (errors.OverloadedError, "the upstream provider is overloaded; retry in a moment"),
    (errors.ServerError, "the upstream provider failed; retry later"),
    (errors.TimeoutError_, "the upstream provider did not answer in time; retry later"),
    (errors.NetworkError, "serve's connection to the upstream provider failed; retry later"),
    (errors.ProtocolError, "the upstream provider sent a broken stream; retry later"),
]
_SERVER_FAULT = "serve could not run this request (a fault on the server's side); the operator can see why in serve's log"
# About the client's own request: the message helps it fix the request (the hint is the CLI's)
_CLIENT_SIDE = (errors.BadRequestError, errors.UsageError, errors.SchemaMismatchError, errors.ToolStepLimitError)

_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps with an option builds an encoder per call


def http_status(err: BaseException | None) -> int:
    for cls, status in _HTTP_STATUS:
        if isinstance(err, cls):
            return status
    return 500


def client_message(result: TurnResult) -> str:
    """The one line a remote client gets for a failed turn (every front: SSE, OpenAI, WebSocket).
    An upstream's words are sanitized: a client that prints them gets no escape sequence of theirs."""
    err = result.error
    if err is None:
        return sanitize(result.message)
    if isinstance(err, _CLIENT_SIDE):
        return sanitize(errors.redact(err.message))
    for cls, message in _SERVER_SIDE:
        if isinstance(err, cls):
            if err.retry_after is not None:
                return f"{message} (retry after {err.retry_after:g} s)"
            return message
    return _SERVER_FAULT


def frame(item: Event | TurnResult) -> dict[str, Any]:
    """{"type": "token"|"reasoning"|"usage"|"done"|"error", ...}: the SSE/WebSocket vocabulary."""
    if isinstance(item, TurnResult) and not item.ok and item.outcome is not Outcome.FAILED:
        return {"type": "done", "finish_reason": "cancelled", "stats": item.stats.as_dict()}
    data = result_dict(item) if isinstance(item, TurnResult) else event_dict(item)
    if data["type"] == "text":
        data["type"] = "token"
    elif data["type"] == "error" and isinstance(item, TurnResult):
        data["message"] = client_message(item)
    return data


def sse(item: Event | TurnResult) -> str:
    """One SSE event; the data is one line of JSON, so newlines in text never break framing."""
    if type(item) is TextDelta:  # nearly every event: its JSON written directly (~0.3 µs, not ~3.5)
        return 'event: token\ndata: {"text": ' + _json(item.text) + "}\n\n"
    data = frame(item)
    name = data.pop("type")
    if name == "error":
        data = {"message": data["message"], "code": data["code"]}
    return f"event: {name}\ndata: {_json(data)}\n\n"


def openai_error(message: str, code: str, status: int, param: str | None = None) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if code == "insufficient_quota":  # OpenAI's own type for a spent budget, which clients check
        kind = code
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


class OpenAIChunks:
    """Builds `chat.completion.chunk` objects for one response."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.calls: dict[int, int] = {}  # the upstream's call index (Anthropic counts text blocks too) → ours
        self._text = self._around("content")  # the chunk for a text delta, before and after its JSON string

    def _around(self, key: str) -> tuple[str, str]:
        marker = "\x00"
        head, tail = self.chunk({key: marker}).split(_json(marker))
        return head, tail

    def chunk(self, delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None,
              choices: bool = True) -> str:
        body: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model,
                                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
        if usage is not None:
            body["usage"] = usage
        return f"data: {_json(body)}\n\n"

    def for_event(self, event: Event) -> str | None:
        """A chunk for text and reasoning; usage and finish go into the closing chunks."""
        if type(event) is TextDelta:
            return self._text[0] + _json(event.text) + self._text[1]
        if isinstance(event, ReasoningDelta):
            return self.chunk({"reasoning_content": event.text})
        if isinstance(event, ToolCallStart):
            index = self.calls.setdefault(event.index, len(self.calls))
            return self.chunk({"tool_calls": [{"index": index, "id": event.id, "type": "function",
                                               "function": {"name": event.name, "arguments": ""}}]})
        if isinstance(event, ToolCallDelta) and event.index in self.calls:
            return self.chunk({"tool_calls": [{"index": self.calls[event.index],
                                               "function": {"arguments": event.arguments}}]})
        return None

    def completion(self, result: TurnResult) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": result.text or (None if result.tool_calls else "")}
        if result.tool_calls:
            message["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                     for c in result.tool_calls]
        if result.reasoning:
            message["reasoning_content"] = result.reasoning
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(result)}],
                "usage": usage_dict(result)}


def finish_reason(result: TurnResult) -> str:
    """The OpenAI name of why the answer ended (Anthropic's names mapped)."""
    reason = result.finish_reason or "stop"
    return {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop", "tool_use": "tool_calls"}.get(reason, reason)


def usage_dict(result: TurnResult) -> dict[str, int]:
    prompt = result.stats.input_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": result.stats.tokens,
            "total_tokens": prompt + result.stats.tokens}


def result_error(result: TurnResult) -> tuple[dict[str, Any], int]:
    """A failed turn as an OpenAI-shaped error object and its HTTP status."""
    status = http_status(result.error)
    return openai_error(client_message(result), error_code(result), status), status


def retry_headers(result: TurnResult) -> dict[str, str] | None:
    """`Retry-After` (whole seconds, rounded up) and `retry-after-ms` for a failed turn whose upstream
    said when to retry: the openai SDK (and most HTTP clients) back off by these, not by the message."""
    err = result.error
    wait = err.retry_after if isinstance(err, errors.StreamchatError) else None
    if wait is None or wait < 0:
        return None
    return {"Retry-After": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))}
