"""The event → dict vocabulary shared by NDJSON (`--json`), SSE and WebSocket output."""

from __future__ import annotations

from streamchat.events import (
    Done,
    Event,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolResult,
    TurnResult,
    Usage,
)


def event_dict(event: Event) -> dict[str, object]:
    """The wire shape of one event."""
    if isinstance(event, TextDelta):
        return {"type": "text", "text": event.text}
    if isinstance(event, ReasoningDelta):
        return {"type": "reasoning", "text": event.text}
    if isinstance(event, Usage):
        return {"type": "usage", "input_tokens": event.input_tokens, "output_tokens": event.output_tokens,
                "cache_read_tokens": event.cached_tokens, "cache_write_tokens": event.cache_write_tokens}
    if isinstance(event, Done):
        return {"type": "done", "finish_reason": event.finish_reason}
    if isinstance(event, ToolCallStart):
        return {"type": "tool_call_start", "index": event.index, "id": event.id, "name": event.name}
    if isinstance(event, ToolCallDelta):
        return {"type": "tool_call_delta", "index": event.index, "arguments": event.arguments}
    if isinstance(event, ToolCall):
        return {"type": "tool_call", "id": event.id, "name": event.name, "arguments": event.arguments}
    if isinstance(event, ToolResult):
        return {"type": "tool_result", "id": event.call.id, "name": event.call.name, "status": event.status,
                "content": event.content, "ms": round(event.ms, 1)}
    raise TypeError(event)


def error_code(result: TurnResult) -> str:
    """A stable machine-readable word for why a turn failed."""
    return result.error.code if result.error is not None else result.outcome.value


def result_dict(result: TurnResult) -> dict[str, object]:
    """The closing record of a turn: `done` with stats, or `error` (with `partial` when text was sent)."""
    if result.ok:
        return {"type": "done", "finish_reason": result.finish_reason, "cost_usd": result.stats.cost_usd,
                "stats": result.stats.as_dict()}
    return {"type": "error", "message": result.message, "code": error_code(result), "partial": result.partial,
            "stats": result.stats.as_dict()}
