"""streamchat: a terminal chat client that streams LLM answers token by token, and its Python API.

The API's names are imported on first use: the CLI imports this package on every start, and
`streamchat --version` must not pay for the chat service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamchat._version import __version__
from streamchat.errors import AuthError, BadRequestError, ConfigError, NetworkError, RateLimitError, ServerError, UsageError
from streamchat.errors import StreamchatError as Error
from streamchat.events import Done, Event, Message, ReasoningDelta, TextDelta, Usage

if TYPE_CHECKING:
    from streamchat.api import AsyncModel, AsyncResponse, Conversation, Model, Response, get_async_model, get_model

_API = ("AsyncModel", "AsyncResponse", "Conversation", "Model", "Response", "get_async_model", "get_model")

__all__ = [
    "AsyncModel",
    "AsyncResponse",
    "AuthError",
    "BadRequestError",
    "ConfigError",
    "Conversation",
    "Done",
    "Error",
    "Event",
    "Message",
    "Model",
    "NetworkError",
    "RateLimitError",
    "ReasoningDelta",
    "Response",
    "ServerError",
    "TextDelta",
    "Usage",
    "UsageError",
    "__version__",
    "get_async_model",
    "get_model",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        from streamchat import api

        return getattr(api, name)
    raise AttributeError(f"module 'streamchat' has no attribute {name!r}")
