"""Anthropic Messages API through the official SDK's streaming helper."""

from __future__ import annotations

from typing import Any

from streamchat.config import ProviderConfig
from streamchat.providers._content import MB, anthropic_messages, anthropic_tools, check_sizes
from streamchat.providers._schema import anthropic_native, anthropic_tool
from streamchat.providers._sdk import SdkProvider, error_body
from streamchat.providers._wire import AnthropicParser, WireParser
from streamchat.providers.base import ChatRequest

DEFAULT_MAX_TOKENS = 4096


class AnthropicProvider(SdkProvider):
    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        super().__init__(config, "anthropic", "Anthropic", timeout)
        self.no_native: set[str] = set()  # models that refused native structured output: forced tool (#30)

    params = frozenset({"top_p", "stop", "parallel_tool_calls"})
    accepts = frozenset({"image", "pdf"})
    required = ("model", "messages", "max_tokens")

    def context_overflow(self, message: str | None, etype: str | None, code: str | None) -> bool:
        # Anthropic has no error code for it; its API says "prompt is too long: N tokens > M maximum".
        return etype == "invalid_request_error" and (message or "").startswith("prompt is too long")

    def _endpoint(self, client: Any) -> Any:
        return client.messages.with_streaming_response.create

    def _parser(self, request: ChatRequest) -> WireParser:
        return AnthropicParser(provider=self.name, model=request.model,
                               answer_tool=request.schema.name if request.schema else None)

    def _native(self, request: ChatRequest) -> dict[str, Any] | None:
        """The `output_config` for the request's schema when the model takes it natively (#30)."""
        if request.schema is None or request.tools or request.model in self.no_native:
            return None
        return anthropic_native(request.model, request.schema)

    def _fall_back(self, request: ChatRequest, exc: Exception) -> bool:
        """The model refused native structured output (a 400 about output_config or the schema):
        it is asked with the forced tool from now on, starting with this request."""
        if self._native(request) is None or getattr(exc, "status_code", None) != 400:
            return False
        message = (error_body(exc)[0] or str(exc)).lower()
        if not any(word in message for word in ("output_config", "output_format", "schema", "structured")):
            return False
        self.no_native.add(request.model)
        return True

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        check_sizes(request.messages, provider=self.name, image_max=5 * MB, document_max=32 * MB)
        system, messages = anthropic_messages(request.messages, tools=bool(request.tools))
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            kwargs["system"] = system
        params = dict(request.params)
        if request.tools:
            kwargs.update(anthropic_tools(request.tools, request.tool_choice,
                                          parallel=params.pop("parallel_tool_calls", None)))
        native = self._native(request)
        if native is not None:  # the answer is the text, constrained by the API
            kwargs["output_config"] = native
        elif request.schema is not None:
            # The answer is the input of a tool the model must call; its JSON streams as the text
            # (AnthropicParser). With tools of the caller's too, any call is forced, and the answer
            # tool ends the turn.
            kwargs["tools"] = kwargs.get("tools", []) + [anthropic_tool(request.schema)]
            kwargs["tool_choice"] = ({"type": "any"} if request.tools
                                     else {"type": "tool", "name": request.schema.name})
        extra: dict[str, Any] = {}
        if request.temperature is not None:  # not a named argument of every SDK release
            extra["temperature"] = request.temperature
        for key, value in params.items():
            extra["stop_sequences" if key == "stop" else key] = list(value) if key == "stop" else value
        if extra:
            kwargs["extra_body"] = extra
        return kwargs
