"""OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from streamchat.config import ProviderConfig
from streamchat.providers._content import MB, check_sizes, openai_messages, openai_tools
from streamchat.providers._schema import openai_forced_tool, response_format
from streamchat.providers._sdk import SdkProvider, error_body
from streamchat.providers._wire import OpenAIParser, WireParser
from streamchat.providers.base import ChatRequest
from streamchat.providers.options import Option, table, to_wire
from streamchat.providers.registry import spec_for

# The Chat Completions request options streamchat passes on (-o NAME=VALUE; `streamchat models --options openai`).
OPTIONS = table(
    Option("top_p", "float", "nucleus sampling: the probability mass to sample from", 0, 1),
    Option("seed", "int", "sample deterministically (best effort)"),
    Option("stop", "stops", "stop before any of these strings", most=4),
    Option("presence_penalty", "float", "penalize tokens that already appeared", -2, 2),
    Option("frequency_penalty", "float", "penalize tokens by how often they appeared", -2, 2),
    Option("logit_bias", "object", 'token id → bias from -100 to 100, e.g. {"50256": -100}'),
    Option("service_tier", "choice", "processing tier", choices=("auto", "default", "flex", "scale", "priority")),
    Option("reasoning_effort", "choice", "how hard a reasoning model thinks (--reasoning sets it too)",
           choices=("none", "minimal", "low", "medium", "high")),
    Option("verbosity", "choice", "how long the answer is (GPT-5)", choices=("low", "medium", "high")),
    Option("response_format", "object", 'e.g. {"type": "json_object"}'),
    Option("parallel_tool_calls", "bool", "let the model call several tools at once"),
    Option("user", "str", "an end-user id, for abuse monitoring"),
    Option("safety_identifier", "str", "an end-user id, for abuse monitoring"),
    Option("prompt_cache_key", "str", "groups requests that share a prefix, for caching"),
    Option("store", "bool", "store the completion on OpenAI's side"),
    Option("metadata", "object", "string key/value tags stored with the completion"),
)


class OpenAIProvider(SdkProvider):
    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        super().__init__(config, "openai", "OpenAI", timeout)
        # A compatible server (any base URL but OpenAI's) may refuse `response_format`; once it has,
        # schemas are asked for with a forced function tool instead (#30).
        self.compatible = self.base_url is not None and urlsplit(self.base_url).hostname != "api.openai.com"
        self.schema_by_tool = False

    params = frozenset(OPTIONS)
    accepts = spec_for("openai").accepts
    required = ("model", "messages")

    def context_overflow(self, message: str | None, etype: str | None, code: str | None) -> bool:
        return code == "context_length_exceeded"

    def _endpoint(self, client: Any) -> Any:
        return client.chat.completions.with_streaming_response.create

    def _parser(self, request: ChatRequest) -> WireParser:
        return OpenAIParser(provider=self.name, model=request.model,
                            answer_tool=request.schema.name if request.schema else None)

    def _fall_back(self, request: ChatRequest, exc: Exception) -> bool:
        """A compatible server refused `response_format` (a 400 or 422 naming it): from now on a
        forced function tool carries the schema, and this request is sent again that way."""
        if request.schema is None or not self.compatible or self.schema_by_tool:
            return False
        if getattr(exc, "status_code", None) not in (400, 422):
            return False
        message, _etype, _code = error_body(exc)
        if "response_format" not in (message or str(exc)):
            return False
        self.schema_by_tool = True
        return True

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
        kwargs.update(to_wire(OPTIONS, request.params))
        if request.reasoning not in (None, "off"):
            kwargs["reasoning_effort"] = request.reasoning
        if request.tools:
            kwargs.update(openai_tools(request.tools, request.tool_choice))
        if request.schema is not None and self.schema_by_tool:
            forced = openai_forced_tool(request.schema)
            kwargs["tools"] = kwargs.get("tools", []) + forced["tools"]
            kwargs["tool_choice"] = "required" if request.tools else forced["tool_choice"]
        elif request.schema is not None:
            kwargs["response_format"] = response_format(request.schema)
        return kwargs
