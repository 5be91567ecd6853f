"""Anthropic prompt caching: which blocks of a request carry a cache breakpoint.

Anthropic caches a request's prefix (tools, then system prompt, then messages) up to a block
marked `cache_control`, at most four such blocks per request, and only when that prefix holds at
least the model's minimum (1024 tokens for Sonnet and Opus, 2048 for Haiku). A later request
starting with the same prefix reads it at a tenth of the input price; writing it costs 1.25×.
Without marks every turn of a long conversation pays full price for everything resent.

`breakpoints` decides from estimated sizes alone (pure, unit-tested); `mark` applies it to a
Messages API request. OpenAI caches on its own: nothing is marked for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from streamchat.cost import estimate_tokens

EPHEMERAL = {"type": "ephemeral"}
MOST = 4  # the API refuses a request with more marked blocks
# The least prefix a model caches, by the first part of its name that matches; the rest: 1024.
MINIMUM = (("haiku-4", 4096), ("opus-4-5", 4096), ("opus-4-6", 4096), ("sonnet-4-6", 2048), ("haiku", 2048))
DEFAULT_MINIMUM = 1024
ATTACHMENT_TOKENS = 1600  # an image or PDF block: about a full-size image (its base64 says little)

Kind = Literal["tools", "system", "user", "assistant"]


@dataclass(frozen=True)
class Segment:
    """One part of the request's prefix, in order: the tools, the system prompt, or one message."""

    kind: Kind
    tokens: int


def minimum_tokens(model: str) -> int:
    """The shortest prefix `model` caches (a shorter marked one is sent at full price, unmarked)."""
    return next((least for part, least in MINIMUM if part in model), DEFAULT_MINIMUM)


def breakpoints(segments: Sequence[Segment], minimum: int, most: int = MOST) -> tuple[int, ...]:
    """The indexes of the segments to mark, ascending. Each ends a prefix of at least `minimum`
    tokens (a shorter one is not cached: its mark would be wasted). By priority:

    1. the last segment: the whole request is written, for the next turn to read;
    2. where the previous request ended (the user turn before the last answer): read now, even
       when this turn added more blocks than the API looks back over for an earlier mark (20);
    3. the end of the head (tools and system prompt), which other conversations share;
    4. segments large on their own (the -f context, a pasted file), latest first: they stay
       cached when a later part of the conversation changes (/retry, an edited question).
    """
    ends: list[int] = []
    total = 0
    for segment in segments:
        total += segment.tokens
        ends.append(total)
    kinds = [s.kind for s in segments]
    candidates: list[int] = []
    if segments:
        candidates.append(len(segments) - 1)
        answers = [i for i, kind in enumerate(kinds) if kind == "assistant"]
        if answers:
            asked = [i for i in range(answers[-1]) if kinds[i] == "user"]
            candidates += asked[-1:]
        head = 0
        while head < len(kinds) and kinds[head] in ("tools", "system"):
            head += 1
        candidates += [head - 1] if head else []
        candidates += [i for i in reversed(range(len(segments))) if segments[i].tokens >= minimum]
    chosen: list[int] = []
    for index in candidates:
        if index not in chosen and ends[index] >= minimum and len(chosen) < most:
            chosen.append(index)
    return tuple(sorted(chosen))


def _block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return estimate_tokens(block)
    if block.get("type") in ("image", "document"):
        return ATTACHMENT_TOKENS
    return estimate_tokens(json.dumps(block, ensure_ascii=False))


def _marked(block: dict[str, Any]) -> bool:
    """Whether a block can carry the mark: the API refuses it on an empty text block and a thinking block."""
    kind = block.get("type")
    return kind not in ("thinking", "redacted_thinking") and not (kind == "text" and not block.get("text"))


def _with_mark(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """`content` (a string or blocks) with its last markable block marked; unchanged when none is."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    for i in reversed(range(len(blocks))):
        if _marked(blocks[i]):
            blocks[i] = {**blocks[i], "cache_control": dict(EPHEMERAL)}
            return blocks
    return content


def mark(kwargs: dict[str, Any], model: str) -> dict[str, Any]:
    """A Messages API request (`tools`, `system`, `messages`) with its breakpoints marked."""
    segments: list[Segment] = []
    tools = kwargs.get("tools") or []
    if tools:
        segments.append(Segment("tools", sum(_block_tokens(t) for t in tools)))
    system: str | list[dict[str, Any]] = kwargs.get("system") or ""
    if system:
        segments.append(Segment("system", sum(_block_tokens(b) for b in ([system] if isinstance(system, str) else system))))
    messages = kwargs["messages"]
    for m in messages:
        content = m["content"]
        segments.append(Segment(m["role"], sum(_block_tokens(b) for b in ([content] if isinstance(content, str) else content))))
    out = dict(kwargs)
    offset = len(segments) - len(messages)
    marked_messages = list(messages)
    for index in breakpoints(segments, minimum_tokens(model)):
        kind = segments[index].kind
        if kind == "tools":
            out["tools"] = [*tools[:-1], {**tools[-1], "cache_control": dict(EPHEMERAL)}]
        elif kind == "system":
            out["system"] = _with_mark(system)
        else:
            m = marked_messages[index - offset]
            marked_messages[index - offset] = {**m, "content": _with_mark(m["content"])}
    out["messages"] = marked_messages
    return out
