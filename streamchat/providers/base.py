"""The provider contract and the registry that builds (and caches) adapters."""

from __future__ import annotations

import importlib
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from streamchat.errors import StreamchatError
from streamchat.events import Event, Message, ToolChoice, ToolSpec
from streamchat.schema_request import ResponseSchema

if TYPE_CHECKING:  # types only: config parses [routes] through routing, which builds adapters here
    from streamchat.config import ProviderConfig

EventStream = Generator[Event, None, None]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    params: tuple[tuple[str, Any], ...] = ()  # further sampling options, each in the adapter's `params`
    tools: tuple[ToolSpec, ...] = ()  # tools the model may call
    tool_choice: ToolChoice | None = None
    schema: ResponseSchema | None = None  # answer as JSON matching it (#30); each adapter asks its own way
    reasoning: str | None = None  # off | low | medium | high (--reasoning): each adapter's own terms
    cache: bool = True  # mark cache breakpoints where the API wants them (Anthropic); --no-cache: False


class Provider(Protocol):
    """Given messages and options, yield normalized events.

    `stream()` returns a generator the caller closes: closing it (break, exception,
    Ctrl-C) must close the underlying HTTP stream at once, so adapters hold the SDK
    stream in a `with` block. The last event of a complete answer is `Done`; a stream
    that ends without one is raised as `IncompleteStreamError`, so a cut answer never
    looks complete.
    """

    name: str
    base_url: str | None
    params: frozenset[str]  # the ChatRequest.params names this adapter sends: its OPTIONS table
    accepts: frozenset[str]  # attachment kinds it sends as they are: "image", "pdf"

    def prepare(self, model: str) -> None:
        """Make the first turn fast (the local model loads its weights); a no-op for HTTP APIs."""

    def stream(self, request: ChatRequest) -> EventStream: ...

    def list_models(self) -> list[str]: ...

    def map_error(self, exc: Exception, *, model: str, started: bool) -> StreamchatError:
        """This adapter's own faults (its SDK's exception types) as our errors."""
        ...


class AsyncProvider(Provider, Protocol):
    """An adapter that can also stream on asyncio (the SDK adapters): serve runs its turns
    without a thread each."""

    def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]: ...


_CACHE: dict[tuple[str, str | None, float], Provider] = {}


# The same lookups by the config object itself: serve resolves the same (frozen) config on every
# request, and `repr` of it was ~1/5 of building a turn's target. Holds the config, so its id is not
# reused while listed; bounded for callers that build a new config each time.
_BY_IDENTITY: dict[tuple[int, str | None, float], tuple[ProviderConfig, Provider]] = {}
_BY_IDENTITY_MAX = 64


def get_provider(config: ProviderConfig, *, timeout: float = 60.0) -> Provider:
    """The adapter for `config`, built once per process (the local model loads once). Keyed on the
    whole table and where requests go, not the name alone: two configs may share a name."""
    base_url = config.effective_base_url()[0]
    seen = _BY_IDENTITY.get((id(config), base_url, timeout))
    if seen is not None and seen[0] is config:
        return seen[1]
    key = (repr(config), base_url, timeout)
    if key not in _CACHE:
        module, _, cls = config.spec.adapter.partition(":")
        _CACHE[key] = getattr(importlib.import_module(module), cls)(config, timeout=timeout)
    if len(_BY_IDENTITY) >= _BY_IDENTITY_MAX:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[(id(config), base_url, timeout)] = (config, _CACHE[key])
    return _CACHE[key]


async def aclose_all() -> None:
    """Close the asyncio clients the cached adapters opened (serve's shutdown): their pooled
    upstream connections end with a close, not when the process dies."""
    for provider in list(_CACHE.values()):
        aclose = getattr(provider, "aclose", None)
        if aclose is not None:
            await aclose()


def as_dicts(messages: tuple[Message, ...]) -> list[dict[str, str]]:
    """Plain role/content messages, for a model without tools: earlier tool steps as text."""
    from streamchat.providers._content import without_tool_steps

    return [{"role": m.role, "content": m.content} for m in without_tool_steps(messages)]
