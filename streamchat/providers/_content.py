"""Messages with attachments in each wire format: OpenAI content parts, Anthropic content blocks.

Size limits are checked here, before anything is uploaded, with a message naming the limit.
"""

from __future__ import annotations

import json
from typing import Any

from streamchat.errors import BadRequestError
from streamchat.events import Attachment, Message, ToolCall, ToolChoice, ToolSpec

MB = 1024 * 1024


def check_sizes(messages: tuple[Message, ...], *, provider: str, image_max: int, document_max: int) -> None:
    for m in messages:
        for a in m.attachments:
            limit = image_max if a.is_image else document_max
            if len(a.data) > limit:
                raise BadRequestError(f"{a.name} is {len(a.data) / MB:.1f} MB; {provider} takes "
                                      f"{'images' if a.is_image else 'documents'} up to {limit // MB} MB",
                                      hint="attach a smaller file")


def _data_url(a: Attachment) -> str:
    return f"data:{a.mime};base64,{a.base64()}"


def without_tool_steps(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """The context for a request without tools (a conversation with tool steps continued without
    `--tools`): each answer's calls and their results become text of that answer. The APIs refuse
    tool blocks in a request that defines no tools ("Requests which include `tool_use` or
    `tool_result` blocks must define tools"), and the model should still know what the tools said."""
    if not any(m.tool_calls or m.role == "tool" for m in messages):
        return messages
    results = {m.tool_call_id: m for m in messages if m.role == "tool"}
    out: list[Message] = []
    for m in messages:
        if m.role == "tool":
            continue
        parts = ([m.content] if m.content else []) + [_step_text(c, results.get(c.id)) for c in m.tool_calls]
        text = "\n\n".join(parts)
        if m.role == "assistant" and out and out[-1].role == "assistant":  # the steps of one answer: one message
            out[-1] = Message("assistant", f"{out[-1].content}\n\n{text}")
        else:
            out.append(Message(m.role, text, m.attachments))
    return tuple(out)


def _step_text(call: ToolCall, result: Message | None) -> str:
    what = f"[tool call {call.name}({call.arguments})"
    if result is None:
        return f"{what}: not run]"
    return f"{what} {'failed' if result.is_error else 'returned'}:\n{result.content}\n]"


def openai_messages(messages: tuple[Message, ...], *, tools: bool = True) -> list[dict[str, Any]]:
    """Chat Completions messages: text content, or content parts with `image_url` / `file` data URLs.
    Without `tools` in the request, earlier tool steps are sent as text."""
    out: list[dict[str, Any]] = []
    for m in messages if tools else without_tool_steps(messages):
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
            continue
        if m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls]})
            continue
        if not m.attachments:
            out.append({"role": m.role, "content": m.content})
            continue
        parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}]
        for a in m.attachments:
            if a.is_image:
                parts.append({"type": "image_url", "image_url": {"url": _data_url(a)}})
            else:
                parts.append({"type": "file", "file": {"filename": a.name, "file_data": _data_url(a)}})
        out.append({"role": m.role, "content": parts})
    return out


def anthropic_messages(messages: tuple[Message, ...], *, tools: bool = True) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt, Messages API turns): attachments as `image` / `document` blocks before the text.
    Without `tools` in the request, earlier tool steps are sent as text."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    out: list[dict[str, Any]] = []
    for m in messages if tools else without_tool_steps(messages):
        if m.role == "system":
            continue
        if m.role == "tool":  # results go back in a user turn, one tool_result block per call
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content,
                     **({"is_error": True} if m.is_error else {})}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list) \
                    and out[-1]["content"][-1].get("type") == "tool_result":
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if m.tool_calls:
            uses: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            uses += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _input(c.arguments)} for c in m.tool_calls]
            out.append({"role": "assistant", "content": uses})
            continue
        if not m.attachments:
            out.append({"role": m.role, "content": m.content})
            continue
        blocks: list[dict[str, Any]] = [
            {"type": "image" if a.is_image else "document",
             "source": {"type": "base64", "media_type": a.mime, "data": a.base64()}}
            for a in m.attachments
        ]
        blocks.append({"type": "text", "text": m.content})
        out.append({"role": m.role, "content": blocks})
    return system, out


def _input(arguments: str) -> Any:
    """Anthropic wants the input as an object; arguments that are not one are sent wrapped."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def _described(tool: ToolSpec) -> dict[str, str]:
    return {"description": tool.description} if tool.description else {}


def openai_tools(tools: tuple[ToolSpec, ...], choice: ToolChoice | None) -> dict[str, Any]:
    """`tools` / `tool_choice` arguments of a Chat Completions request."""
    out: dict[str, Any] = {"tools": [{"type": "function", "function": {
        "name": t.name, **_described(t), "parameters": t.parameters}} for t in tools]}
    if choice is not None:
        mode, name = choice
        out["tool_choice"] = {"type": "function", "function": {"name": name}} if mode == "tool" else mode
    return out


def anthropic_tools(tools: tuple[ToolSpec, ...], choice: ToolChoice | None, *, parallel: bool | None = None
                    ) -> dict[str, Any]:
    """The same for the Messages API: `input_schema`, "required" is called "any", and OpenAI's
    `parallel_tool_calls: false` is the tool choice's `disable_parallel_tool_use`."""
    out: dict[str, Any] = {"tools": [{"name": t.name, **_described(t), "input_schema": t.parameters} for t in tools]}
    if choice is not None or parallel is not None:
        mode, name = choice or ("auto", None)
        out["tool_choice"] = {"type": "tool", "name": name} if mode == "tool" else {"type": {"required": "any"}.get(mode, mode)}
        if parallel is not None and mode != "none":
            out["tool_choice"]["disable_parallel_tool_use"] = not parallel
    return out
