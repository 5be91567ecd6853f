"""OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter)."""

from __future__ import annotations

from typing import Any

from streamchat.config import ProviderConfig
from streamchat.errors import IncompleteStreamError
from streamchat.events import Done, ReasoningDelta, TextDelta, Usage
from streamchat.providers._sdk import SdkProvider, cut_on_cancel
from streamchat.providers.base import ChatRequest, EventStream, as_dicts


class OpenAIProvider(SdkProvider):
    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        import openai

        super().__init__(config, openai, "OpenAI", timeout)

    params = frozenset({"top_p", "stop", "seed", "presence_penalty", "frequency_penalty"})

    def context_overflow(self, message: str | None, etype: str | None, code: str | None) -> bool:
        return code == "context_length_exceeded"

    def stream(self, request: ChatRequest) -> EventStream:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": as_dicts(request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        kwargs.update((k, list(v) if k == "stop" else v) for k, v in request.params)
        finish: str | None = None
        with self._client.chat.completions.create(**kwargs) as stream, cut_on_cancel(stream.response):
            for chunk in stream:
                if chunk.usage is not None:
                    yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                if delta is not None:
                    reasoning = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
                    if isinstance(reasoning, str) and reasoning:
                        yield ReasoningDelta(reasoning)
                    if delta.content:
                        yield TextDelta(delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
        if finish is None:
            raise IncompleteStreamError(f"the {self.name} stream ended before the answer was complete",
                                        hint="the partial answer was kept; retry")
        yield Done(finish)
