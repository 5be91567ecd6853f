"""Anthropic Messages API through the official SDK's streaming helper."""

from __future__ import annotations

from typing import Any

from streamchat.config import ProviderConfig
from streamchat.errors import UsageError
from streamchat.providers import prompt_cache
from streamchat.providers._content import MB, anthropic_messages, anthropic_tools, check_sizes
from streamchat.providers._schema import anthropic_native, anthropic_tool
from streamchat.providers._sdk import SdkProvider, error_body
from streamchat.providers._wire import AnthropicParser, WireParser
from streamchat.providers.base import ChatRequest
from streamchat.providers.options import Option, table, to_wire
from streamchat.providers.registry import spec_for

DEFAULT_MAX_TOKENS = 4096
# Extended thinking's token budget per --reasoning level (the API's least is 1024). Thinking counts
# toward max_tokens, so the budget is added to the answer's max_tokens: the answer keeps its length.
THINKING_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}

# The Messages API request options streamchat passes on (-o NAME=VALUE; `streamchat models --options anthropic`).
OPTIONS = table(
    Option("top_p", "float", "nucleus sampling: the probability mass to sample from", 0, 1),
    Option("top_k", "int", "sample only from the K likeliest tokens", 1),
    Option("stop", "stops", "stop before any of these strings", field="stop_sequences"),
    Option("service_tier", "choice", "priority capacity when available, or standard only",
           choices=("auto", "standard_only")),
    Option("metadata", "object", 'e.g. {"user_id": "…"}, an opaque end-user id'),
    Option("parallel_tool_calls", "bool", "let the model call several tools at once"),
)


class AnthropicProvider(SdkProvider):
    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        super().__init__(config, "anthropic", "Anthropic", timeout)
        self.no_native: set[str] = set()  # models that refused native structured output: forced tool (#30)

    params = frozenset(OPTIONS)
    accepts = spec_for("anthropic").accepts
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
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        kwargs: dict[str, Any] = {"model": request.model, "messages": messages, "max_tokens": max_tokens, "stream": True}
        budget = THINKING_BUDGET.get(request.reasoning or "off")
        if budget is not None:
            _check_thinking(request, forced_tool=request.schema is not None and self._native(request) is None)
            kwargs["thinking"] = {"type": "enabled", "budget_tokens": budget}
            kwargs["max_tokens"] = max_tokens + budget  # below max_tokens, as the API requires
        if system:
            kwargs["system"] = system
        params = dict(request.params)
        parallel = params.pop("parallel_tool_calls", None)  # Anthropic's is a tool_choice field
        if request.tools:
            kwargs.update(anthropic_tools(request.tools, request.tool_choice, parallel=parallel))
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
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        kwargs.update(to_wire(OPTIONS, tuple(params.items())))
        return prompt_cache.mark(kwargs, request.model) if request.cache else kwargs


def _check_thinking(request: ChatRequest, *, forced_tool: bool) -> None:
    """What the API refuses with extended thinking, refused before anything is sent: a temperature
    or top_k; a forced tool (a --schema answered through a tool); and tools, whose next step must
    send the thinking blocks back signed, which the conversation does not keep."""
    if request.temperature not in (None, 1) or "top_k" in dict(request.params):
        raise UsageError("Anthropic's extended thinking takes no --temperature or top_k",
                         hint="leave them out, or --reasoning off",
                         repl_message="Anthropic's extended thinking takes no /set temperature or top_k",
                         repl_hint="/set temperature and /set top_k unset them, or /reasoning off")
    if request.tools or forced_tool:
        if request.tools:
            raise UsageError("extended thinking cannot go with tools on Anthropic yet",
                             hint="--reasoning off for this question", repl_hint="/reasoning off for this question")
        raise UsageError("extended thinking cannot go with a schema on Anthropic yet",
                         hint="--reasoning off, or leave out --schema", repl_hint="/reasoning off, or /schema off")
