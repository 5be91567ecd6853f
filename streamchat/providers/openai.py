"""OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter)."""

from __future__ import annotations

from typing import Any

from streamchat.config import ProviderConfig
from streamchat.providers._content import MB, check_sizes, openai_messages, openai_tools
from streamchat.providers._sdk import SdkProvider
from streamchat.providers._wire import OpenAIParser, WireParser
from streamchat.providers.base import ChatRequest


class OpenAIProvider(SdkProvider):
    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        super().__init__(config, "openai", "OpenAI", timeout)

    params = frozenset({"top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "parallel_tool_calls"})
    accepts = frozenset({"image", "pdf"})
    required = ("model", "messages")

    def context_overflow(self, message: str | None, etype: str | None, code: str | None) -> bool:
        return code == "context_length_exceeded"

    def _endpoint(self, client: Any) -> Any:
        return client.chat.completions.with_streaming_response.create

    def _parser(self, request: ChatRequest) -> WireParser:
        return OpenAIParser(provider=self.name, model=request.model)

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        check_sizes(request.messages, provider=self.name, image_max=20 * MB, document_max=32 * MB)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": openai_messages(request.messages, tools=bool(request.tools)),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        kwargs.update((k, list(v) if k == "stop" else v) for k, v in request.params)
        if request.tools:
            kwargs.update(openai_tools(request.tools, request.tool_choice))
        return kwargs
