"""Anthropic Messages API through the official SDK's streaming helper."""

from __future__ import annotations

from typing import Any

from streamchat.config import ProviderConfig
from streamchat.errors import IncompleteStreamError
from streamchat.events import Done, ReasoningDelta, TextDelta, Usage
from streamchat.providers._sdk import SdkProvider, cut_on_cancel
from streamchat.providers.base import ChatRequest, EventStream, split_system

DEFAULT_MAX_TOKENS = 4096


class AnthropicProvider(SdkProvider):
    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        import anthropic

        super().__init__(config, anthropic, "Anthropic", timeout)

    params = frozenset({"top_p", "stop"})

    def context_overflow(self, message: str | None, etype: str | None, code: str | None) -> bool:
        # Anthropic has no error code for it; its API says "prompt is too long: N tokens > M maximum".
        return etype == "invalid_request_error" and (message or "").startswith("prompt is too long")

    def stream(self, request: ChatRequest) -> EventStream:
        system, messages = split_system(request.messages)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            kwargs["system"] = system
        extra: dict[str, Any] = {}
        if request.temperature is not None:  # not a named argument of every SDK release
            extra["temperature"] = request.temperature
        for key, value in request.params:
            extra["stop_sequences" if key == "stop" else key] = list(value) if key == "stop" else value
        if extra:
            kwargs["extra_body"] = extra
        input_tokens: int | None = None
        finish: str | None = None
        stopped = False
        with self._client.messages.stream(**kwargs) as stream, cut_on_cancel(stream.response):
            for event in stream:
                kind = event.type
                if kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta" and delta.text:
                        yield TextDelta(delta.text)
                    elif delta.type == "thinking_delta" and delta.thinking:
                        yield ReasoningDelta(delta.thinking)
                elif kind == "message_start":
                    input_tokens = event.message.usage.input_tokens
                elif kind == "message_delta":
                    finish = event.delta.stop_reason or finish
                    yield Usage(input_tokens, event.usage.output_tokens)
                elif kind == "message_stop":
                    stopped = True
        if not stopped:
            raise IncompleteStreamError(f"the {self.name} stream ended before message_stop",
                                        hint="the partial answer was kept; retry")
        yield Done(finish)
