"""Provider adapters: SDK in, normalized events out. SDKs are imported only inside adapters.

The names below load on first use: config imports `providers.registry`, which must not pull in
`base` (and config with it) through this package.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ChatRequest", "Provider", "get_provider"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("streamchat.providers.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
