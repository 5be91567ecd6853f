"""Provider adapters: SDK in, normalized events out. SDKs are imported only inside adapters."""

from streamchat.providers.base import ChatRequest, Provider, get_provider

__all__ = ["ChatRequest", "Provider", "get_provider"]
