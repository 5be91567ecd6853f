"""OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from streamchat.config import ProviderConfig
from streamchat.errors import IncompleteStreamError
from streamchat.events import Done, Event, ReasoningDelta, TextDelta, Usage
from streamchat.providers.base import ChatRequest, as_dicts, sdk_client_options


class OpenAIProvider:
    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        import openai

        self.name = config.name
        self.base_url = config.base_url
        self._client = openai.OpenAI(**sdk_client_options(config, timeout))

    def stream(self, request: ChatRequest) -> Iterator[Event]:
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
        finish: str | None = None
        with self._client.chat.completions.create(**kwargs) as stream:
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

    def list_models(self) -> list[str]:
        return sorted(m.id for m in self._client.models.list())
