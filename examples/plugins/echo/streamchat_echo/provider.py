"""The `echo` provider: streams the last question back word by word, as normalized events."""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

from streamchat.errors import StreamchatError, unexpected
from streamchat.events import Done, Event, TextDelta, Usage
from streamchat.providers.registry import ProviderSpec

# Capabilities as data: no key, no SDK, text only, nothing to price; `-m echo` alone is `echo:echo`.
SPEC = ProviderSpec(type="echo", adapter="streamchat_echo.provider:EchoProvider", needs_key=False, key_env=None,
                    base_url_env=None, sdk_module=None, tools=False, images=False, pdfs=False, schemas=False,
                    remote=False, priced=False, default_model="echo", reasoning=False)
OPTIONS: dict[str, Any] = {}  # no -o options


class EchoProvider:
    params = frozenset(OPTIONS)
    accepts: frozenset[str] = frozenset()  # text only

    def __init__(self, config: Any, *, timeout: float = 60.0) -> None:
        self.name = config.name
        self.base_url: str | None = None

    def prepare(self, model: str) -> None:
        pass

    def stream(self, request: Any) -> Generator[Event, None, None]:
        question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        words = re.findall(r"\s*\S+", question)  # each word with the space before it
        for i, word in enumerate(words):
            yield TextDelta(word.lstrip() if i == 0 else word)
        yield Usage(input_tokens=len(words), output_tokens=len(words))
        yield Done("stop")

    def list_models(self) -> list[str]:
        return ["echo"]

    def map_error(self, exc: Exception, *, model: str, started: bool) -> StreamchatError:
        return exc if isinstance(exc, StreamchatError) else unexpected(exc, self.name)
