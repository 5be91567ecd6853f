"""Messages with attachments in each wire format: OpenAI content parts, Anthropic content blocks.

Size limits are checked here, before anything is uploaded, with a message naming the limit.
"""

from __future__ import annotations

from typing import Any

from streamchat.errors import BadRequestError
from streamchat.events import Attachment, Message

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


def openai_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Chat Completions messages: text content, or content parts with `image_url` / `file` data URLs."""
    out: list[dict[str, Any]] = []
    for m in messages:
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


def anthropic_messages(messages: tuple[Message, ...]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt, Messages API turns): attachments as `image` / `document` blocks before the text."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
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
