"""The provider contract and the registry that builds (and caches) adapters."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from streamchat.config import ProviderConfig
from streamchat.events import Event, Message


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0


class Provider(Protocol):
    """Given messages and options, yield normalized events.

    `stream()` is a generator: closing it (break, exception, Ctrl-C) must close the
    underlying HTTP stream at once, so adapters hold the SDK stream in a `with` block.
    The last event of a complete answer is `Done`; a stream that ends without one is
    raised as `IncompleteStreamError`, so a cut answer never looks complete.
    """

    name: str

    def stream(self, request: ChatRequest) -> Iterator[Event]: ...

    def list_models(self) -> list[str]: ...


_ADAPTERS = {
    "openai": "streamchat.providers.openai:OpenAIProvider",
    "anthropic": "streamchat.providers.anthropic:AnthropicProvider",
    "local": "streamchat.providers.local:LocalProvider",
}
_CACHE: dict[tuple[str, float], Provider] = {}


def get_provider(config: ProviderConfig, *, timeout: float = 60.0) -> Provider:
    """The adapter for `config`, built once per process (the local model loads once)."""
    key = (config.name, timeout)
    if key not in _CACHE:
        module, _, cls = _ADAPTERS[config.type].partition(":")
        _CACHE[key] = getattr(importlib.import_module(module), cls)(config, timeout=timeout)
    return _CACHE[key]


def split_system(messages: tuple[Message, ...]) -> tuple[str | None, list[dict[str, str]]]:
    """System prompt apart from the turns, for APIs that take it separately."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    return system, [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]


def as_dicts(messages: tuple[Message, ...]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def sdk_client_options(config: ProviderConfig, timeout: float) -> dict[str, object]:
    """Constructor arguments shared by the official SDK clients.

    `timeout` bounds connecting and every wait for the next byte (so it is also the
    idle timeout of a stream); the SDKs' own retries are off because session.py owns
    the retry policy.
    """
    import httpx2

    return {
        "api_key": config.require_key(),
        "base_url": config.base_url,
        "max_retries": 0,
        "timeout": httpx2.Timeout(timeout, connect=min(timeout, 15.0)),
    }
